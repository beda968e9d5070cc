//! The example stack's command line: `hello render|preview|deploy|destroy ... --env <env>`.

fn main() -> std::process::ExitCode {
    cairn::cli::main(hello::program())
}

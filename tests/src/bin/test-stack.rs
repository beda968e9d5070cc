//! A stack program for cairn's integration tests and benchmarks, made of `test:Thing`s.
//!
//! `config/<env>.toml` (the tests write it):
//! ```toml
//! count = 3          # independent things fleet/t0..t2
//! chain = 2          # things chain/c0 <- c1, each using the previous one's token
//! value = "v1"       # the value of every thing
//! key = "k1"         # the key of every thing (a change replaces them)
//! secret = false     # add `vault`, whose value is the secret in CAIRN_TEST_SECRET
//! protect = ["t0"]   # protected things
//! keyring = { env = "X" }   # add `keyring`, whose value is this secret from the config
//! ```

use cairn::{interpolate, Options, Part, Secret, Stack};
use cairn_tests::{Thing, ThingProvider};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    count: usize,
    #[serde(default)]
    chain: usize,
    value: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    protect: Vec<String>,
    #[serde(default)]
    keyring: Option<Secret<String>>,
}

fn build(stack: &mut Stack, config: &Config) -> anyhow::Result<()> {
    let opts = |name: &str| Options::new().protect(config.protect.iter().any(|p| p == name));
    stack.component("fleet", |stack| {
        for i in 0..config.count {
            let name = format!("t{i}");
            stack.add_with(
                &name,
                Thing { key: config.key.clone().map(Into::into), value: config.value.clone().into() },
                opts(&name),
            );
        }
    });
    let last = stack
        .component("chain", |stack| {
            let mut previous = None;
            for i in 0..config.chain {
                let name = format!("c{i}");
                let value = match &previous {
                    None => config.value.clone().into(),
                    Some(token) => interpolate([Part::from(config.value.as_str()), Part::from("+"), Part::from(token)]),
                };
                let thing =
                    stack.add_with(&name, Thing { key: config.key.clone().map(Into::into), value }, opts(&name));
                previous = Some(thing.token.clone());
            }
            previous
        })
        .into_inner();
    if let Some(token) = last {
        stack.export("last_token", token);
    }
    if config.secret {
        let secret =
            std::env::var("CAIRN_TEST_SECRET").map_err(|_| anyhow::anyhow!("secret = true needs CAIRN_TEST_SECRET"))?;
        stack.add("vault", Thing { key: None, value: Secret::new(secret.clone()).into() });
        stack.export("password", Secret::new(secret));
    }
    if let Some(secret) = &config.keyring {
        stack.add("keyring", Thing { key: None, value: secret.clone().into() });
    }
    stack.export("count", config.count as u64);
    Ok(())
}

fn main() -> std::process::ExitCode {
    cairn::cli::main(
        cairn::cli::Program::new("test", build)
            .providers(cairn::providers::local::registry().with(ThingProvider::from_env())),
    )
}

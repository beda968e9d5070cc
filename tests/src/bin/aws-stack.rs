//! A stack program of AWS resources, for cairn's CLI tests and `just bench aws` against moto.
//! AWS is reached through the standard configuration chain (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_REGION`, ...), as a real program would.
//!
//! `config/<env>.toml`:
//! ```toml
//! regions = ["us-east-1"]   # every resource below is made in each of these regions
//! topics = 2                # SNS topics `topics/t<i>`
//! log_groups = 2            # log groups `logs/g<i>`, named /<stack>/g<i>
//! retention_days = 14       # the log groups' retention
//! ```

use cairn::Stack;
use cairn_aws::logs::LogGroup;
use cairn_aws::sns::Topic;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    regions: Vec<String>,
    #[serde(default)]
    topics: usize,
    #[serde(default)]
    log_groups: usize,
    #[serde(default)]
    retention_days: Option<u32>,
}

fn build(stack: &mut Stack, config: &Config) -> anyhow::Result<()> {
    let name = stack.name().to_string();
    for region in &config.regions {
        stack.component(region, |stack| {
            stack.component("topics", |stack| {
                for i in 0..config.topics {
                    stack.add(&format!("t{i}"), Topic::new(format!("{name}-t{i}")).in_region(region));
                }
            });
            stack.component("logs", |stack| {
                for i in 0..config.log_groups {
                    let mut group = LogGroup::new(format!("/{name}/g{i}")).in_region(region);
                    group.retention_days = config.retention_days;
                    stack.add(&format!("g{i}"), group);
                }
            });
        });
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let aws = cairn_aws::Aws::from_env();
    cairn::cli::main(
        cairn::cli::Program::new("aws", build).providers(cairn_aws::add_to(cairn::providers::local::registry(), &aws)),
    )
}

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
//! vpcs = 1                  # VPCs `net/v<i>` (10.<i>.0.0/16), each with:
//! subnets_per_vpc = 2       #   subnets `net/v<i>-s<j>` over the region's a/b/c zones
//! security_groups_per_vpc = 2   # security groups `net/v<i>-g<j>`
//! launch_templates = 1      # launch templates `fleet/lt<i>`, and as many (empty) Auto
//! auto_scaling_groups = 1   # Scaling groups `fleet/asg<i>` (min 0) over the first VPC's subnets
//! ```

use cairn::Stack;
use cairn_aws::autoscaling::AutoScalingGroup;
use cairn_aws::ec2::{LaunchTemplate, SecurityGroup, Subnet, Vpc};
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
    #[serde(default)]
    vpcs: usize,
    #[serde(default)]
    subnets_per_vpc: usize,
    #[serde(default)]
    security_groups_per_vpc: usize,
    #[serde(default)]
    launch_templates: usize,
    #[serde(default)]
    auto_scaling_groups: usize,
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
            let subnets = stack.component("net", |stack| {
                let mut first = Vec::new();
                for v in 0..config.vpcs {
                    let vpc = stack.add(&format!("v{v}"), Vpc::new(format!("10.{v}.0.0/16")).in_region(region));
                    for s in 0..config.subnets_per_vpc {
                        let zone = format!("{region}{}", ["a", "b", "c"][s % 3]);
                        let subnet = Subnet::new(&vpc.id, format!("10.{v}.{s}.0/24"), zone).in_region(region);
                        let subnet = stack.add(&format!("v{v}-s{s}"), subnet);
                        if v == 0 {
                            first.push(subnet.id.clone());
                        }
                    }
                    for g in 0..config.security_groups_per_vpc {
                        let group =
                            SecurityGroup::new(format!("{name}-v{v}-g{g}"), "A group", &vpc.id).in_region(region);
                        stack.add(&format!("v{v}-g{g}"), group);
                    }
                }
                first
            });
            stack.component("fleet", |stack| {
                for i in 0..config.launch_templates.max(config.auto_scaling_groups) {
                    let lt = stack.add(
                        &format!("lt{i}"),
                        LaunchTemplate::new(format!("{name}-lt{i}"), "ami-04681a1dbd79675a5", "t3.micro")
                            .in_region(region),
                    );
                    if i < config.auto_scaling_groups && !subnets.is_empty() {
                        let mut group = AutoScalingGroup::new(
                            format!("{name}-asg{i}"),
                            lt.id.clone(),
                            lt.latest_version.clone(),
                            0,
                            2,
                            subnets.iter().map(Into::into).collect(),
                        )
                        .in_region(region);
                        group.wait_for_capacity_timeout = 0;
                        stack.add(&format!("asg{i}"), group);
                    }
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

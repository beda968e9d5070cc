//! An example stack: a small static site, written as local files.
//!
//! Each page is rendered from a `tera` template with the environment's config, and an index
//! lists every page with the SHA-256 of its content, an output known only after the page
//! is written: a dependency edge from the index to each page.
//!
//! ```text
//! cargo run -p hello -- preview --env dev
//! cargo run -p hello -- deploy --env dev --yes
//! ```

use cairn::providers::local::File;
use cairn::{interpolate, Options, Part, Stack};
use serde::{Deserialize, Serialize};

/// `config/<env>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the site is written, relative to the directory cairn runs in.
    out_dir: String,
    title: String,
    pages: Vec<Page>,
    /// Keep the site's files from being deleted or replaced by accident.
    #[serde(default)]
    protect: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    name: String,
    heading: String,
    body: String,
}

const PAGE: &str = include_str!("../templates/page.html.tera");

pub fn build(stack: &mut Stack, config: &Config) -> anyhow::Result<()> {
    let env = stack.env().to_string();
    let pages: Vec<_> = stack
        .component("pages", |stack| {
            config
                .pages
                .iter()
                .map(|page| {
                    let html = stack.template(
                        &format!("pages/{}.html", page.name),
                        PAGE,
                        &serde_json::json!({"title": config.title, "env": env, "page": page}),
                    );
                    let file = File {
                        path: format!("{}/{}.html", config.out_dir, page.name),
                        content: html,
                        mode: Some(0o644),
                    };
                    (page.name.clone(), stack.add_with(&page.name, file, Options::new().protect(config.protect)))
                })
                .collect::<Vec<_>>()
        })
        .into_inner();

    let mut index = vec![Part::from(format!("# {} ({env})\n\n", config.title))];
    for (name, file) in &pages {
        index.push(Part::from(format!("- {name}.html sha256=")));
        index.push(Part::from(&file.sha256));
        index.push(Part::from("\n"));
    }
    let index = stack
        .add("index", File { path: format!("{}/INDEX.md", config.out_dir), content: interpolate(index), mode: None });
    stack.export("index_path", index.path.clone());
    stack.export("pages", pages.len() as u64);
    Ok(())
}

/// The example program: `hello-<env>` stacks configured from `examples/hello/config/<env>.toml`.
pub fn program() -> cairn::cli::Program<Config> {
    cairn::cli::Program::new("hello", build).config_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
}

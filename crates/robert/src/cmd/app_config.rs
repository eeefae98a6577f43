//! `robert app-config`: the `config` list that `/register` and `/status`
//! return to apps (server-api.md §3.3, §3.5), e.g. `app.checkStatusFrequency`
//! or `ble.filterMode`.
//!
//! ```text
//! robert app-config list
//! robert app-config set app.checkStatusFrequency 12
//! robert app-config set ble.filterMode RISKS --string
//! robert app-config delete app.checkStatusFrequency
//! ```
//!
//! Changes go to the database; every server node picks them up within a
//! minute (the list is cached that long). Exit status 0, or 2 on error
//! (including `delete` of a name that is not set).

use std::process::ExitCode;

use anyhow::{Context as _, bail};

use super::serve::{ConfigArgs, runtime};

/// The longest parameter name accepted.
const MAX_NAME: usize = 128;
/// The largest JSON value accepted, in bytes.
const MAX_VALUE: usize = 64 * 1024;

/// Arguments of `robert app-config`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppConfigArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print the list as apps receive it (JSON).
    List {
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Set NAME to VALUE, a JSON value (`12`, `true`, `{"a":1}`, `"text"`).
    Set {
        /// Parameter name, e.g. `app.checkStatusFrequency`.
        name: String,
        /// The value, as JSON.
        value: String,
        /// Take VALUE as a plain string instead of JSON.
        #[arg(long)]
        string: bool,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Remove NAME from the list.
    Delete {
        /// Parameter name.
        name: String,
        #[command(flatten)]
        common: ConfigArgs,
    },
}

/// A name apps can match: printable ASCII without spaces, 1 to 128 bytes.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("invalid name {name:?}: 1 to {MAX_NAME} printable ASCII characters, no spaces");
    }
    Ok(())
}

/// VALUE as JSON (or as a string with `--string`).
fn parse_value(value: &str, string: bool) -> anyhow::Result<serde_json::Value> {
    if value.len() > MAX_VALUE {
        bail!(
            "value too large: {} bytes (at most {MAX_VALUE})",
            value.len()
        );
    }
    if string {
        return Ok(serde_json::Value::String(value.to_owned()));
    }
    serde_json::from_str(value).with_context(|| {
        format!("VALUE is not JSON: {value:?} (quote a string as '\"text\"' or add --string)")
    })
}

pub(crate) fn run(args: AppConfigArgs) -> anyhow::Result<ExitCode> {
    let common = match &args.action {
        Action::List { common } | Action::Set { common, .. } | Action::Delete { common, .. } => {
            common
        }
    };
    let config = common.load()?;
    // Validate before touching the database.
    let value = match &args.action {
        Action::Set {
            name,
            value,
            string,
            ..
        } => {
            check_name(name)?;
            Some(parse_value(value, *string)?)
        }
        Action::Delete { name, .. } => {
            check_name(name)?;
            None
        }
        Action::List { .. } => None,
    };
    runtime()?.block_on(async move {
        let store = robert_store::open(&config.server.database_url(), &config.store)
            .await
            .context("cannot open the database")?;
        let result: anyhow::Result<ExitCode> = async {
            match &args.action {
                Action::List { .. } => {}
                Action::Set { name, .. } => {
                    let value = value.unwrap_or(serde_json::Value::Null);
                    store.set_app_config(name, &value).await?;
                }
                Action::Delete { name, .. } => {
                    if !store.delete_app_config(name).await? {
                        bail!("{name:?} is not set");
                    }
                }
            }
            let list: Vec<serde_json::Value> = store
                .app_config()
                .await?
                .into_iter()
                .map(|e| serde_json::json!({"name": e.name, "value": e.value}))
                .collect();
            outln!("{}", serde_json::to_string_pretty(&list)?);
            Ok(ExitCode::SUCCESS)
        }
        .await;
        store.close().await;
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked() {
        assert!(check_name("app.checkStatusFrequency").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert_eq!(parse_value("12", false).unwrap(), serde_json::json!(12));
        assert_eq!(
            parse_value("RISKS", true).unwrap(),
            serde_json::json!("RISKS")
        );
        let err = parse_value("RISKS", false).unwrap_err().to_string();
        assert!(err.contains("--string"), "{err}");
        assert!(parse_value(&"1".repeat(MAX_VALUE + 1), false).is_err());
    }
}

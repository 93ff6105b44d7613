//! The command line of `sipshard balance`, built from the option declarations: one clap
//! argument per option, read back into a [`Layer`].

use super::error::{invalid, ConfigError, Origin};
use super::layer::{Layer, Located, Raw, RawBackend};
use super::options::{Kind, Opt, OPTIONS};
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// `sipshard balance` arguments: the values given on the command line, by option.
///
/// Every option can also be set in the TOML file given with `--config`; a value given here
/// replaces the file's (a repeated flag replaces the file's whole list).
#[derive(Clone, Default)]
pub struct BalanceArgs {
    values: BTreeMap<&'static str, Vec<String>>,
    config: Option<PathBuf>,
}

impl BalanceArgs {
    /// Parses flags as `sipshard balance` would (without the program and command names).
    pub fn from_flags<I, T>(flags: I) -> Result<BalanceArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = <Self as clap::Args>::augment_args(Command::new("balance"));
        let matches = command.no_binary_name(true).try_get_matches_from(flags)?;
        Self::from_arg_matches(&matches)
    }

    /// The file given with `--config`.
    pub fn config_file(&self) -> Option<&PathBuf> {
        self.config.as_ref()
    }

    /// The command line as a layer; absent options are "not given".
    pub(crate) fn layer(&self) -> Result<Layer, ConfigError> {
        let mut layer = Layer::default();
        for (&key, values) in &self.values {
            let Some(opt) = super::options::by_key(key) else {
                continue;
            };
            let cli = |value: &String| Located::new(value.clone(), Origin::CommandLine);
            let Some(last) = values.last() else {
                continue;
            };
            let raw = match opt.kind {
                Kind::Addresses => Raw::List(values.iter().map(cli).collect()),
                Kind::Backends => Raw::Backends(
                    values
                        .iter()
                        .map(|spec| RawBackend {
                            spec: cli(spec),
                            weight: None,
                            options: Layer::default(),
                        })
                        .collect(),
                ),
                Kind::U32 | Kind::U64 => Raw::Int(last.trim().parse().map_err(|_| {
                    invalid(
                        &Origin::CommandLine,
                        opt.key,
                        Some(last),
                        "not a number".to_string(),
                    )
                })?),
                _ => Raw::Text(last.clone()),
            };
            layer.set(opt.key, Located::new(raw, Origin::CommandLine));
        }
        Ok(layer)
    }
}

/// The clap argument of one option.
fn argument(opt: &Opt) -> Arg {
    let arg = Arg::new(opt.key)
        .long(opt.flag)
        .value_name(opt.value_name)
        .help(opt.help_with_default());
    let arg = match opt.kind {
        Kind::Addresses | Kind::Backends => arg.action(ArgAction::Append),
        _ => arg.action(ArgAction::Set),
    };
    match opt.kind {
        Kind::U32 => arg.value_parser(value_parser!(u32)),
        Kind::U64 => arg.value_parser(value_parser!(u64)),
        Kind::Ip => arg.value_parser(value_parser!(IpAddr)),
        Kind::Path => arg.value_parser(value_parser!(PathBuf)),
        _ => arg,
    }
}

impl clap::Args for BalanceArgs {
    fn augment_args(command: Command) -> Command {
        OPTIONS
            .iter()
            .fold(command, |command, opt| command.arg(argument(opt)))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for BalanceArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = BalanceArgs::default();
        for opt in OPTIONS {
            let values: Vec<String> = match opt.kind {
                Kind::U32 => texts::<u32>(matches, opt.key),
                Kind::U64 => texts::<u64>(matches, opt.key),
                Kind::Ip => texts::<IpAddr>(matches, opt.key),
                Kind::Path => {
                    args.config = matches.get_one::<PathBuf>(opt.key).cloned();
                    continue;
                }
                _ => texts::<String>(matches, opt.key),
            };
            if !values.is_empty() {
                args.values.insert(opt.key, values);
            }
        }
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// The values clap parsed for `key`, as text.
fn texts<T: ToString + Clone + Send + Sync + 'static>(
    matches: &ArgMatches,
    key: &str,
) -> Vec<String> {
    matches
        .get_many::<T>(key)
        .map(|values| values.map(ToString::to_string).collect())
        .unwrap_or_default()
}

impl fmt::Debug for BalanceArgs {
    /// Every value given, the secret's redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("BalanceArgs");
        for (key, values) in &self.values {
            match super::options::by_key(key).map(|o| o.kind) {
                Some(Kind::Secret) => out.field(key, &"<redacted>"),
                _ => out.field(key, values),
            };
        }
        out.field("config", &self.config).finish()
    }
}

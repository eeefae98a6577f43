//! One module per subcommand: arguments and `run`.

pub(crate) mod score;

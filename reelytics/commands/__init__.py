"""One module per `reelytics` subcommand; each is thin and calls library functions."""

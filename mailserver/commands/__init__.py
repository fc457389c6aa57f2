"""One module per `mailserver` subcommand group."""

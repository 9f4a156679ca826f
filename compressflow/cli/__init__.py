"""The command line: the parser, the commands, the console and live progress, the starter."""

//! Balancer configuration: command line and TOML file into one validated config.

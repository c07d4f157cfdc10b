//! Harness for the end-to-end tests: builds the C targets, runs the tools, reads reports.

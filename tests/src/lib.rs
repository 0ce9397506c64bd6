//! Shared harness for sluice's end-to-end tests: start the binaries, drive kubectl, wait for state.

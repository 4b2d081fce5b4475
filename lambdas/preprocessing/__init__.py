"""The Plan state: validate the execution input and plan the run."""

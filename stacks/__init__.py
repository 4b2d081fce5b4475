"""mlpipe's CDK stacks: thin stacks that compose one construct per concern."""

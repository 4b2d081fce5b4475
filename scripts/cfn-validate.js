// CDK's CloudFormation template validation in a process of its own: app.py starts it
// (stacks/cfn_validate.py) before it imports CDK, so that the engine builds on the other core while the app is
// created, not in the jsii kernel. It runs aws-cdk-lib's own CloudFormationValidatePlugin, from the aws-cdk-lib
// that package.json pins to the Python package's version. It builds the engine at once, then reads the validation
// context (JSON, on stdin) and writes {"version", "report"} (JSON, on stdout): the plugin's report as it is.
'use strict';
const { CloudFormationValidatePlugin } = require('aws-cdk-lib');

const plugin = new CloudFormationValidatePlugin();
const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  if (chunks.length === 0) return; // the app ended without validating (a failed synth, or no stacks)
  const context = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const report = plugin.validate(context);
  process.stdout.write(JSON.stringify({ version: plugin.version, report }));
});

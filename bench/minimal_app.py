"""The jsii floor for bench/synth.py: a one-stack CDK app with a single bucket, nothing else."""

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App()
stack = cdk.Stack(app, "MlpipeBenchMinimal")
s3.Bucket(stack, "Bucket")
app.synth()

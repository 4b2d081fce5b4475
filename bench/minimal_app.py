"""The jsii floor for bench/synth.py: a one-stack CDK app with a single bucket, nothing else.

With MLPIPE_BENCH_VALIDATION=process, CDK's template validation runs in a process of its own as in app.py
(stacks/cfn_validate.py), for a second floor that gains from the second core as the full app does.
"""

import os
import sys
from pathlib import Path

validator = None
if os.environ.get("MLPIPE_BENCH_VALIDATION") == "process":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from stacks.cfn_validate import start_template_validation

    validator = start_template_validation()

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_s3 as s3  # noqa: E402

app = cdk.App(builtin_cloud_formation_validation=validator is None)
stack = cdk.Stack(app, "MlpipeBenchMinimal")
s3.Bucket(stack, "Bucket")
if validator is not None:
    from stacks.validation import TemplateValidation

    cdk.Validations.of(app).add_plugins(TemplateValidation(validator))
app.synth()

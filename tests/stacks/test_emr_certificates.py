"""EMR's TLS certificates are part of the deployment: made before the security configuration that names them,
stored at the object it names under the project key, renewed daily, and alarmed on 30 days before they end
(EMR management guide, "Providing certificates for encrypting data in transit with Amazon EMR encryption")."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.xdist_group("cdk")


def _of(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def test_the_certificates_exist_before_the_security_configuration_that_names_them(dev: Any) -> None:
    emr = dev.json("Emr")
    ((custom_id, custom),) = _of(emr, "Custom::EmrCertificates").items()
    ((function_id, function),) = _of(emr, "AWS::Lambda::Function").items()
    (config,) = _of(emr, "AWS::EMR::SecurityConfiguration").values()
    assert custom_id in config["DependsOn"]
    assert custom["Properties"]["ServiceToken"] == {"Fn::GetAtt": [function_id, "Arn"]}

    props = function["Properties"]
    env = props["Environment"]["Variables"]
    assert props["Handler"] == "certificates.handler.handler" and "KmsKeyArn" in props
    # the function writes the very object that the security configuration points EMR to
    s3_object = json.dumps(config["Properties"]["SecurityConfiguration"]["EncryptionConfiguration"][
        "InTransitEncryptionConfiguration"]["TLSCertificateConfiguration"]["S3Object"])  # fmt: skip
    assert env["CERTIFICATES_KEY"] in s3_object and "s3://mlpipe-dev-artifacts-" in s3_object
    assert json.dumps(env["CERTIFICATES_BUCKET"]).count("mlpipe-dev-artifacts-") == 1
    # ...encrypted with the project key
    key_arn = config["Properties"]["SecurityConfiguration"]["EncryptionConfiguration"]["AtRestEncryptionConfiguration"][
        "S3EncryptionConfiguration"]["AwsKmsKey"]  # fmt: skip
    assert env["KMS_KEY_ARN"] == key_arn

    (rule,) = _of(emr, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(6 hours)"
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_the_function_touches_that_one_object_only(dev: Any) -> None:
    emr = dev.json("Emr")
    statements = [
        s
        for p in _of(emr, "AWS::IAM::Policy").values()
        if any("TlsCertificates" in r["Ref"] for r in p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_action = {
        a: s for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert json.dumps(by_action[action]["Resource"]).endswith('/emr/tls/certificates.zip"]]}'), action
    assert by_action["s3:ListBucket"]["Condition"] == {
        "StringEquals": {"s3:prefix": "emr/tls/certificates.zip"}
    }
    assert by_action["cloudwatch:PutMetricData"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "mlpipe/EmrCertificates"}
    }


def test_every_workload_hears_when_the_certificates_near_their_end(both: Any) -> None:
    monitoring = both.json("Monitoring")
    (alarm,) = [
        a["Properties"]
        for a in _of(monitoring, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "mlpipe/EmrCertificates"
    ]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == ("DaysToExpiry", "Minimum", 86400)
    assert alarm["Dimensions"] == [{"Name": "Environment", "Value": "dev"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 30)
    assert alarm["TreatMissingData"] == "breaching"  # a renewal that stopped reporting is a failure too
    assert len(alarm["AlarmActions"]) == 2  # each workload's topic
    function = next(iter(_of(both.json("Emr"), "AWS::Lambda::Function").values()))
    env = function["Properties"]["Environment"]["Variables"]
    assert (env["METRIC_NAMESPACE"], env["MLPIPE_ENV"]) == ("mlpipe/EmrCertificates", "dev")

#!/usr/bin/env python3
"""Make the PEM certificates for EMR in-transit encryption and upload them where the security configuration
points (s3://<artifacts bucket>/emr/tls/certificates.zip), encrypted with the project key.

    python scripts/emr_tls_certificates.py --bucket mlpipe-dev-artifacts-123456789012-us-east-1 \
        --region us-east-1 [--days 365]

A self-signed certificate for *.<region>.compute.internal (*.ec2.internal in us-east-1), as EMR's
documentation describes for private-CA-less setups; rotate it by running the script again. The private key
never leaves this machine except into the KMS-encrypted object; nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

KEY = "emr/tls/certificates.zip"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="the artifacts bucket (stack output ArtifactsBucket)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        print("emr_tls_certificates: openssl is not installed", file=sys.stderr)
        return 2
    domain = "*.ec2.internal" if args.region == "us-east-1" else f"*.{args.region}.compute.internal"
    import boto3  # after argument checks: no AWS call on bad input

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                str(args.days),
                "-keyout",
                str(work / "privateKey.pem"),
                "-out",
                str(work / "certificateChain.pem"),
                "-subj",
                f"/C=US/O=mlpipe/CN={domain}",
            ],
            check=True,
            capture_output=True,
        )
        shutil.copy(work / "certificateChain.pem", work / "trustedCertificates.pem")
        archive = work / "certificates.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for name in ("privateKey.pem", "certificateChain.pem", "trustedCertificates.pem"):
                zf.write(work / name, name)
        boto3.client("s3", region_name=args.region).upload_file(
            str(archive), args.bucket, KEY, ExtraArgs={"ServerSideEncryption": "aws:kms"}
        )
    print(f"uploaded s3://{args.bucket}/{KEY} for {domain}, valid {args.days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())

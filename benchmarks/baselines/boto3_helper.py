"""What users write instead of credproc: a minimal boto3 credential_process helper with a
JSON file cache. The baseline for benchmarks/cache_hit.py and cold_miss.py.

usage: boto3_helper.py ROLE_ARN ENDPOINT CACHE_FILE
"""

import json
import sys
from datetime import datetime, timedelta, timezone

import boto3

role_arn, endpoint, cache_file = sys.argv[1:4]
try:
    with open(cache_file) as f:
        cached = json.load(f)
    expires = datetime.fromisoformat(cached["Expiration"].replace("Z", "+00:00"))
    if expires - datetime.now(timezone.utc) > timedelta(minutes=20):
        print(json.dumps(cached))
        sys.exit(0)
except (OSError, ValueError, KeyError):
    pass
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x" * 40)
creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="helper")["Credentials"]
out = {
    "Version": 1,
    "AccessKeyId": creds["AccessKeyId"],
    "SecretAccessKey": creds["SecretAccessKey"],
    "SessionToken": creds["SessionToken"],
    "Expiration": creds["Expiration"].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
}
if cache_file != "-":
    with open(cache_file, "w") as f:
        json.dump(out, f)
print(json.dumps(out))

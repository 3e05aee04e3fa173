"""Signature Version 4 as botocore makes it, against a gateway that checks it.

    python3 tests/gateway/signed.py http://127.0.0.1:PORT ACCESS_KEY SECRET

The gateway runs on the fake backend (it echoes). Requests signed with the right secret
pass, including a function named by its ARN (percent-encoded in the path, so the canonical
path is encoded twice) and a qualifier in the query; the wrong secret gets
InvalidSignatureException and an unknown key UnrecognizedClientException, both 403.
"""

import io
import sys
import zipfile

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, KEY, SECRET = sys.argv[1], sys.argv[2], sys.argv[3]


def client(key, secret, region="eu-west-1"):
    return boto3.client("lambda", endpoint_url=ENDPOINT, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def error(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("the call succeeded; a refusal was expected")


package = io.BytesIO()
with zipfile.ZipFile(package, "w") as archive:
    archive.writestr("bootstrap", "#!/bin/sh\n")

good = client(KEY, SECRET)
good.create_function(FunctionName="echo", Runtime="provided.al2023", Role="r",
                     Handler="bootstrap", Code={"ZipFile": package.getvalue()})
good.publish_version(FunctionName="echo")
good.create_alias(FunctionName="echo", Name="live", FunctionVersion="1")
arn = good.get_function(FunctionName="echo")["Configuration"]["FunctionArn"]
answer = good.invoke(FunctionName=arn, Qualifier="live", Payload=b'{"signed": "yes ~+%"}')
assert answer["StatusCode"] == 200 and answer["ExecutedVersion"] == "1", answer
assert answer["Payload"].read() == b'{"signed": "yes ~+%"}'
assert [f["FunctionName"] for f in good.list_functions()["Functions"]] == ["echo"]

assert error(client(KEY, "not the secret").list_functions) == ("InvalidSignatureException", 403)
assert error(client("SOMEONE-ELSE", SECRET).invoke, FunctionName="echo",
             Payload=b"{}") == ("UnrecognizedClientException", 403)
print("signature checks passed")

"""Signature Version 4 as botocore makes it, against a gateway that checks it.

    python3 tests/gateway/signed.py http://127.0.0.1:PORT ACCESS_KEY SECRET

The gateway runs on the fake backend (it echoes). Requests signed with the right secret
pass, including a function named by its ARN (percent-encoded in the path, so the canonical
path is encoded twice) and a qualifier in the query; the wrong secret gets
InvalidSignatureException and an unknown key UnrecognizedClientException, both 403.
Function URLs are signed too (AuthType AWS_IAM): botocore's signature passes, none is
refused. A signed request replayed with another body (and the original body's
X-Amz-Content-SHA256) is refused.
"""

import hashlib
import io
import json
import sys
import urllib.error
import urllib.request
import zipfile

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
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


def send(method, path, body=b"", headers=None, replace_body=None, sign=True):
    """Sends a request botocore signed; `replace_body` goes on the wire instead."""
    request = AWSRequest(method=method, url=ENDPOINT + path, data=body, headers=headers or {})
    if sign:
        SigV4Auth(Credentials(KEY, SECRET), "lambda", "eu-west-1").add_auth(request)
    prepared = request.prepare()
    data = prepared.body if replace_body is None else replace_body
    wire = urllib.request.Request(prepared.url, data=data or None, method=method,
                                  headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(wire) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


# A Function URL, signed: served, its path still percent-encoded in the event.
status, body, _ = send("POST", "/url/echo/signed%20path?q=a%20b", b"hello")
assert status == 200, (status, body)
event = json.loads(body)
assert event["rawPath"] == "/signed%20path", event
assert event["queryStringParameters"] == {"q": "a b"}, event
# Unsigned: refused.
status, body, headers = send("GET", "/url/echo/anything", sign=False)
assert status == 403 and headers["x-amzn-ErrorType"] == "InvalidSignatureException", body

# A signed invocation replayed with another body is refused, whatever hash it claims.
original = b'{"amount": 1}'
claim = {"X-Amz-Content-SHA256": hashlib.sha256(original).hexdigest()}
path = "/2015-03-31/functions/echo/invocations"
status, body, _ = send("POST", path, original, headers=claim)
assert status == 200 and body == original, (status, body)
status, body, headers = send("POST", path, original, headers=claim,
                             replace_body=b'{"amount": 1000}')
assert status == 403 and headers["x-amzn-ErrorType"] == "InvalidSignatureException", body
print("signature checks passed")

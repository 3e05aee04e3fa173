"""Drives a running gateway with the real AWS clients: boto3, the AWS CLI and curl.

    python3 tests/gateway/clients.py http://127.0.0.1:PORT ECHO_ZIP

ECHO_ZIP holds `runtime-loop` as `bootstrap` (echoes an event; `{"action":"error"}` fails
it). Every step asserts what Lambda would answer; the first failure raises and the script
exits non-zero. Run by tests/gateway_kvm.rs.
"""

import base64
import io
import json
import os
import subprocess
import sys
import zipfile

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, ECHO_ZIP = sys.argv[1], sys.argv[2]
ROLE = "arn:aws:iam::000000000000:role/lambda"
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
           AWS_DEFAULT_REGION="us-east-1")

client = boto3.client(
    "lambda",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    # One attempt: a throttle must reach the test, not be retried away.
    config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
)


def step(name):
    print(f"-- {name}", flush=True)


def error_code(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"], error.response
    raise AssertionError(f"{call.__name__} succeeded; an error was expected")


def invoke(payload, **kwargs):
    response = client.invoke(FunctionName="echo", Payload=payload, **kwargs)
    return response, response["Payload"].read()


zip_bytes = open(ECHO_ZIP, "rb").read()

step("CreateFunction")
created = client.create_function(FunctionName="echo", Runtime="provided.al2023", Role=ROLE,
                                 Handler="bootstrap", Code={"ZipFile": zip_bytes}, Timeout=10,
                                 MemorySize=256, Environment={"Variables": {"STAGE": "one"}})
assert created["Version"] == "$LATEST" and created["MemorySize"] == 256, created
assert created["State"] == "Active" and created["CodeSize"] == len(zip_bytes), created
assert created["Environment"]["Variables"] == {"STAGE": "one"}, created

step("Invoke, RequestResponse")
response, body = invoke(b'{"hi": 1}')
assert response["StatusCode"] == 200 and json.loads(body) == {"hi": 1}, (response, body)
assert response["ExecutedVersion"] == "$LATEST", response
assert "FunctionError" not in response, response

step("Invoke with the log tail")
response, _ = invoke(b'{"action": "log", "message": "from the guest"}', LogType="Tail")
tail = base64.b64decode(response["LogResult"]).decode()
assert "from the guest" in tail and "REPORT RequestId" in tail, tail

step("Invoke, a function error")
response, body = invoke(b'{"action": "error"}')
assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled", response
assert json.loads(body)["errorType"] == "Custom.Failure", body

step("Invoke, Event and DryRun")
response, _ = invoke(b'{"async": true}', InvocationType="Event")
assert response["StatusCode"] == 202, response
response, _ = invoke(b"{}", InvocationType="DryRun")
assert response["StatusCode"] == 204, response

step("InvokeWithResponseStream")


def stream(payload, name="echo", **kwargs):
    """The pieces of a streamed response and its InvokeComplete event."""
    response = client.invoke_with_response_stream(FunctionName=name, Payload=payload, **kwargs)
    assert response["StatusCode"] == 200, response
    pieces, complete = [], None
    for event in response["EventStream"]:
        if "PayloadChunk" in event:
            assert complete is None, "a PayloadChunk after InvokeComplete"
            pieces.append(event["PayloadChunk"]["Payload"])
        elif "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    assert complete is not None, "the stream ended without InvokeComplete"
    return pieces, complete


pieces, complete = stream(b'{"action": "stream"}', LogType="Tail")
assert b"".join(pieces) == b"aaaaabbbbbccccc", pieces
assert "ErrorCode" not in complete, complete
assert "REPORT RequestId" in base64.b64decode(complete["LogResult"]).decode(), complete
pieces, complete = stream(b'{"action": "stream", "error": true}')
assert b"".join(pieces) == b"aaaaabbbbbccccc", pieces
assert complete["ErrorCode"] == "Custom.StreamFailure", complete
assert "failed mid-stream" in complete["ErrorDetails"], complete
# A runtime that answers whole: its answer comes as the stream.
pieces, complete = stream(b'{"hi": 2}')
assert json.loads(b"".join(pieces)) == {"hi": 2} and "ErrorCode" not in complete, pieces
# Past 20 MB the stream is cut off with Lambda's error.
pieces, complete = stream(b'{"action": "stream", "chunks": 21, "size": 1048576}')
streamed = sum(len(p) for p in pieces)
assert 19 << 20 <= streamed <= 20 << 20, streamed
assert complete["ErrorCode"] == "Function.ResponseSizeTooLarge", complete
code, _ = error_code(client.invoke_with_response_stream, FunctionName="nobody", Payload=b"{}")
assert code == "ResourceNotFoundException", code

step("PublishVersion, UpdateFunctionConfiguration, ListVersionsByFunction")
v1 = client.publish_version(FunctionName="echo", Description="first")
assert v1["Version"] == "1" and v1["Description"] == "first", v1
updated = client.update_function_configuration(FunctionName="echo",
                                               Environment={"Variables": {"STAGE": "two"}})
assert updated["Environment"]["Variables"] == {"STAGE": "two"}, updated
v2 = client.publish_version(FunctionName="echo")
assert v2["Version"] == "2", v2
versions = [v["Version"] for v in client.list_versions_by_function(FunctionName="echo")["Versions"]]
assert versions == ["$LATEST", "1", "2"], versions
pages = client.get_paginator("list_versions_by_function").paginate(
    FunctionName="echo", PaginationConfig={"PageSize": 1})
paged = [v["Version"] for page in pages for v in page["Versions"]]
assert paged == ["$LATEST", "1", "2"], paged
config = client.get_function_configuration(FunctionName="echo", Qualifier="1")
assert config["Environment"]["Variables"] == {"STAGE": "one"}, config

step("CreateAlias with weighted routing, then UpdateAlias")
alias = client.create_alias(FunctionName="echo", Name="live", FunctionVersion="1",
                            RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
assert alias["FunctionVersion"] == "1", alias
assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.5}, alias
ran = {invoke(b"{}", Qualifier="live")[0]["ExecutedVersion"] for _ in range(20)}
assert ran == {"1", "2"}, ran
client.update_alias(FunctionName="echo", Name="live", FunctionVersion="2",
                    RoutingConfig={"AdditionalVersionWeights": {}})
assert client.get_alias(FunctionName="echo", Name="live")["FunctionVersion"] == "2"
ran = {invoke(b"{}", Qualifier="live")[0]["ExecutedVersion"] for _ in range(5)}
assert ran == {"2"}, ran

step("PutFunctionConcurrency 0: a throttle")
client.put_function_concurrency(FunctionName="echo", ReservedConcurrentExecutions=0)
code, error = error_code(client.invoke, FunctionName="echo", Payload=b"{}")
assert code == "TooManyRequestsException", error
assert error["ResponseMetadata"]["HTTPStatusCode"] == 429, error
assert error.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded", error
client.delete_function_concurrency(FunctionName="echo")
assert invoke(b"{}")[0]["StatusCode"] == 200

step("PutProvisionedConcurrencyConfig, PutFunctionEventInvokeConfig, GetAccountSettings")
provisioned = client.put_provisioned_concurrency_config(
    FunctionName="echo", Qualifier="live", ProvisionedConcurrentExecutions=1)
assert provisioned["RequestedProvisionedConcurrentExecutions"] == 1, provisioned
settings = client.put_function_event_invoke_config(FunctionName="echo", MaximumRetryAttempts=0,
                                                   MaximumEventAgeInSeconds=60)
assert settings["MaximumRetryAttempts"] == 0, settings
account = client.get_account_settings()
assert account["AccountUsage"]["FunctionCount"] == 1, account

step("Bad requests get Lambda's errors")
code, _ = error_code(client.invoke, FunctionName="nope", Payload=b"{}")
assert code == "ResourceNotFoundException", code
code, _ = error_code(client.invoke, FunctionName="echo", Qualifier="9", Payload=b"{}")
assert code == "ResourceNotFoundException", code
code, _ = error_code(client.invoke, FunctionName="echo", Payload=b"{not json")
assert code == "InvalidRequestContentException", code
code, error = error_code(client.invoke, FunctionName="echo", InvocationType="Event",
                         Payload=json.dumps("x" * (1 << 20)).encode())
assert code == "RequestTooLargeException", error
assert error["ResponseMetadata"]["HTTPStatusCode"] == 413, error
code, _ = error_code(client.create_function, FunctionName="notzip", Runtime="provided.al2023",
                     Role=ROLE, Handler="bootstrap", Code={"ZipFile": b"not a zip"})
assert code == "InvalidParameterValueException", code
no_bootstrap = io.BytesIO()
with zipfile.ZipFile(no_bootstrap, "w") as archive:
    archive.writestr("handler.sh", "echo hi")
code, _ = error_code(client.create_function, FunctionName="nobootstrap",
                     Runtime="provided.al2023", Role=ROLE, Handler="bootstrap",
                     Code={"ZipFile": no_bootstrap.getvalue()})
assert code == "InvalidParameterValueException", code
code, _ = error_code(client.create_function, FunctionName="echo", Runtime="provided.al2023",
                     Role=ROLE, Handler="bootstrap", Code={"ZipFile": zip_bytes})
assert code == "ResourceConflictException", code
code, _ = error_code(client.create_function, FunctionName="py", Runtime="python3.12",
                     Role=ROLE, Handler="app.handler", Code={"ZipFile": zip_bytes})
assert code == "InvalidParameterValueException", code


def aws(*args):
    command = ["aws", "--endpoint-url", ENDPOINT, "--region", "us-east-1", "lambda", *args]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


step("the AWS CLI: create-function, invoke, list-functions, delete-function")
aws("create-function", "--function-name", "cli-echo", "--runtime", "provided.al2023",
    "--role", ROLE, "--handler", "bootstrap", "--zip-file", f"fileb://{ECHO_ZIP}")
out = os.path.join(os.path.dirname(os.path.abspath(ECHO_ZIP)), "cli-out.json")
# The CLI's major version decides how --payload is read: v2 wants it declared raw.
version = subprocess.run(["aws", "--version"], env=ENV, capture_output=True, text=True)
raw = ["--cli-binary-format", "raw-in-base64-out"] if "aws-cli/2" in (
    version.stdout + version.stderr) else []
result = json.loads(aws("invoke", "--function-name", "cli-echo", *raw,
                        "--payload", '{"from": "cli"}', out))
assert result["StatusCode"] == 200, result
assert json.load(open(out)) == {"from": "cli"}
names = [f["FunctionName"] for f in json.loads(aws("list-functions"))["Functions"]]
assert sorted(names) == ["cli-echo", "echo"], names
aws("delete-function", "--function-name", "cli-echo")

step("a Function URL, with curl")
done = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "Content-Type: text/plain",
                       "-b", "session=abc", "--data", "hello",
                       f"{ENDPOINT}/url/echo/some/path?q=1&q=2"],
                      capture_output=True, text=True, timeout=60)
assert done.returncode == 0, done.stderr
event = json.loads(done.stdout)  # runtime-loop echoes the event it was given
assert event["version"] == "2.0" and event["rawPath"] == "/some/path", event
assert event["queryStringParameters"] == {"q": "1,2"}, event
assert event["requestContext"]["http"]["method"] == "POST", event
assert event["body"] == "hello" and event["cookies"] == ["session=abc"], event

step("DeleteFunction")
client.delete_function(FunctionName="echo")
code, _ = error_code(client.get_function, FunctionName="echo")
assert code == "ResourceNotFoundException", code

print("all client checks passed")

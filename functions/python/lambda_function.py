# A Python Lambda handler, unmodified: what `def lambda_handler(event, context)` functions
# look like. `{"fail": "..."}` raises, to show the error path; `{"layer": true}` answers what
# the `greeting` module of a layer (/opt/python/greeting.py) says; `{"import": "name"}`
# imports a module then and answers its file; `{"tempfile": "text"}` writes the text to a
# `tempfile.TemporaryFile` (an unnamed `O_TMPFILE` file) and to a file removed while open,
# and answers what it reads back from each.
import platform

invocations = 0


def lambda_handler(event, context):
    global invocations
    invocations += 1
    if isinstance(event, dict) and "fail" in event:
        raise ValueError(event["fail"])
    print(f"handling {context.aws_request_id}")
    if isinstance(event, dict) and "import" in event:
        import importlib
        module = importlib.import_module(event["import"])
        return {"imported": module.__name__, "file": getattr(module, "__file__", None)}
    if isinstance(event, dict) and "tempfile" in event:
        import os
        import tempfile
        with tempfile.TemporaryFile(mode="w+") as scratch:
            scratch.write(event["tempfile"])
            scratch.seek(0)
            unnamed = scratch.read()
        # What TemporaryFile does where O_TMPFILE is refused.
        fd, name = tempfile.mkstemp()
        os.unlink(name)
        with os.fdopen(fd, "w+") as removed:
            removed.write(event["tempfile"])
            removed.seek(0)
            kept = removed.read()
        return {"tempfile": unnamed, "removed": kept}
    if isinstance(event, dict) and event.get("layer"):
        import greeting
        return {"greeting": greeting.GREETING}
    return {
        "statusCode": 200,
        "echo": event,
        "count": invocations,
        "python": platform.python_version(),
    }

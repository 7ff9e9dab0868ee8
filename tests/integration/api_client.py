#!/usr/bin/env python3
"""Raw requests and model checks for tests/integration/api_test.cc, with botocore: the library
the aws CLI itself is built on, so the signatures and the model come from AWS's code, not ours.

  api_client.py requests < spec.json   sends signed (or deliberately mis-signed) requests
  api_client.py validate < spec.json   checks documents against the ElastiCache model

`requests` spec: {"endpoint": "http://127.0.0.1:PORT", "region": "us-west-2",
  "access_key": "...", "secret": "...", "requests": [{
    "name": "...", "method": "POST" | "GET",
    "params": [["Action", "DescribeCacheClusters"], ...],   # in this order on the wire
    "auth": "header" (what the aws CLI does) | "query" (presigned, the documentation's GET)
            | "none",
    "access_key": ..., "secret": ...,     # per request, overriding the spec's
    "skew_seconds": -1200,                # sign as if the clock were this far off
    "expires": 900,                       # X-Amz-Expires for "query"
    "tamper": [["FinalSnapshotIdentifier", null]],   # after signing: set (or drop) params
    "validate": "DescribeCacheClusters"   # check the XML answer against the model
  }]}
  Prints [{"name", "status", "body", "model_errors": [...]}] as JSON.

`validate` spec: {"json": [{"operation": "DescribeSnapshots", "file": "out.json"}],
                  "xml": [{"operation": "...", "status": 200, "file": "body.xml"}]}
  Prints {"checked": N, "errors": [...]}: for the aws CLI's JSON output, every key must be a
  member of the operation's output shape (recursively) with the member's type, and every
  required member present; for raw XML, every element must be one the model's query protocol
  defines (member names, list member names), every scalar must parse as its type, and botocore's
  own query parser must read the same document.
"""

import datetime
import http.client
import json
import sys
import urllib.parse
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.parsers
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import parse_timestamp

NS = "{http://elasticache.amazonaws.com/doc/2015-02-02/}"


def strict_quote(value, safe="", encoding=None, errors=None):
    """RFC 3986 encoding of everything but A-Z a-z 0-9 - _ . ~, as SigV4 wants it."""
    del safe
    return urllib.parse.quote(value, safe="-_.~", encoding=encoding, errors=errors)
COMMON_ERRORS = {
    "MissingAuthenticationToken", "InvalidClientTokenId", "SignatureDoesNotMatch",
    "IncompleteSignature", "RequestExpired", "InvalidAction", "MissingAction",
    "MissingParameter", "NoSuchVersion", "MalformedQueryString", "InvalidQueryParameter",
    "InternalFailure", "ServiceUnavailable",
}


def service_model():
    return botocore.session.get_session().get_service_model("elasticache")


# ---- JSON (the aws CLI's output) ----

def check_json(shape, value, path, errors):
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object for {shape.name}, got {type(value).__name__}")
            return
        for key, v in value.items():
            if key not in shape.members:
                errors.append(f"{path}.{key}: not a member of {shape.name}")
                continue
            check_json(shape.members[key], v, f"{path}.{key}", errors)
        for required in shape.required_members:
            if required not in value:
                errors.append(f"{path}: required member {required} of {shape.name} missing")
    elif t == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_json(shape.member, item, f"{path}[{i}]", errors)
    elif t == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
        elif shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {value!r}")
    elif t in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a number, got {value!r}")
    elif t == "timestamp":
        try:
            parse_timestamp(value)
        except Exception as e:  # noqa: BLE001 - any parse failure is a finding
            errors.append(f"{path}: not a timestamp: {value!r} ({e})")


def validate_json(model, operation, document, errors):
    op = model.operation_model(operation)
    # The aws CLI adds NextToken when it truncates a paginated answer (--max-items).
    document = {k: v for k, v in document.items() if k != "NextToken"}
    check_json(op.output_shape, document, operation, errors)


# ---- XML (the wire) ----

def member_location(shape, name):
    return shape.members[name].serialization.get("name", name)


def check_xml(shape, element, path, errors):
    t = shape.type_name
    if t == "structure":
        by_location = {member_location(shape, m): m for m in shape.members}
        for child in element:
            tag = child.tag.replace(NS, "")
            if tag not in by_location:
                errors.append(f"{path}/{tag}: not a member of {shape.name}")
                continue
            member = by_location[tag]
            check_xml(shape.members[member], child, f"{path}/{tag}", errors)
        if (element.text or "").strip():
            errors.append(f"{path}: text inside structure {shape.name}")
    elif t == "list":
        member_name = shape.member.serialization.get("name", "member")
        for i, child in enumerate(element):
            tag = child.tag.replace(NS, "")
            if tag != member_name:
                errors.append(f"{path}/{tag}: list members of {shape.name} are <{member_name}>")
                continue
            check_xml(shape.member, child, f"{path}/{tag}[{i}]", errors)
    else:
        if len(element):
            errors.append(f"{path}: elements inside scalar {shape.name}")
            return
        text = element.text or ""
        if t in ("integer", "long"):
            try:
                int(text)
            except ValueError:
                errors.append(f"{path}: {text!r} is not an integer")
        elif t == "boolean":
            if text not in ("true", "false"):
                errors.append(f"{path}: {text!r} is not true or false")
        elif t == "timestamp":
            try:
                parse_timestamp(text)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{path}: {text!r} is not a timestamp ({e})")
        elif t == "string" and shape.enum and text not in shape.enum:
            errors.append(f"{path}: {text!r} is not one of {shape.enum}")


def validate_xml(model, operation, status, body, errors):
    op = model.operation_model(operation)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        errors.append(f"{operation}: not XML: {e}")
        return
    if status >= 400:
        if root.tag != NS + "ErrorResponse":
            errors.append(f"{operation}: error root is {root.tag}")
            return
        error = root.find(NS + "Error")
        if error is None or root.find(NS + "RequestId") is None:
            errors.append(f"{operation}: ErrorResponse lacks Error or RequestId")
            return
        kinds = [c.tag.replace(NS, "") for c in error]
        if kinds != ["Type", "Code", "Message"]:
            errors.append(f"{operation}: Error has {kinds}, not Type, Code, Message")
        if error.findtext(NS + "Type") not in ("Sender", "Receiver"):
            errors.append(f"{operation}: Error Type {error.findtext(NS + 'Type')!r}")
        code = error.findtext(NS + "Code")
        modeled = {e.error_code: e.metadata.get("error", {}).get("httpStatusCode")
                   for e in op.error_shapes}
        if code in modeled:
            if modeled[code] != status:
                errors.append(f"{operation}: {code} sent with HTTP {status}, the model says "
                              f"{modeled[code]}")
        elif code not in COMMON_ERRORS:
            errors.append(f"{operation}: error code {code} is neither in the operation's model "
                          f"nor a common Query error")
        return
    if root.tag != NS + operation + "Response":
        errors.append(f"{operation}: root element is {root.tag}")
        return
    wrapper = op.output_shape.serialization.get("resultWrapper") if op.output_shape else None
    tags = [c.tag.replace(NS, "") for c in root]
    if tags != [wrapper, "ResponseMetadata"]:
        errors.append(f"{operation}: response children {tags}, expected {[wrapper, 'ResponseMetadata']}")
        return
    if not root.findtext(f"{NS}ResponseMetadata/{NS}RequestId"):
        errors.append(f"{operation}: no ResponseMetadata/RequestId")
    check_xml(op.output_shape, root.find(NS + wrapper), operation, errors)
    # botocore's own parser must read the same thing (and not fail on it).
    try:
        parsed = botocore.parsers.QueryParser().parse(
            {"body": body.encode(), "headers": {}, "status_code": status}, op.output_shape)
    except Exception as e:  # noqa: BLE001 - botocore failing on the document is the finding
        errors.append(f"{operation}: botocore's query parser fails on it: {e!r}")
        return
    parsed.pop("ResponseMetadata", None)
    check_json(op.output_shape, json.loads(json.dumps(parsed, default=str)), operation, errors)


# ---- Requests ----

def send(spec, req_spec):
    endpoint = spec["endpoint"]
    region = spec.get("region", "us-west-2")
    creds = Credentials(req_spec.get("access_key", spec.get("access_key")),
                        req_spec.get("secret", spec.get("secret")))
    params = [tuple(p) for p in req_spec["params"]]
    method = req_spec.get("method", "POST")
    auth = req_spec.get("auth", "header")
    skew = datetime.timedelta(seconds=req_spec.get("skew_seconds", 0))
    real_now = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: real_now(*a, **k) + skew
    try:
        if method == "GET" or auth == "query":
            url = endpoint + "/?" + urllib.parse.urlencode(params, quote_via=strict_quote)
            request = AWSRequest(method=method, url=url)
            if auth == "query":
                botocore.auth.SigV4QueryAuth(creds, "elasticache", region,
                                             expires=req_spec.get("expires", 900)).add_auth(request)
            elif auth == "header":
                botocore.auth.SigV4Auth(creds, "elasticache", region).add_auth(request)
        else:
            body = urllib.parse.urlencode(params, quote_via=strict_quote)
            request = AWSRequest(method=method, url=endpoint + "/", data=body, headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
            if auth == "header":
                botocore.auth.SigV4Auth(creds, "elasticache", region).add_auth(request)
    finally:
        botocore.auth.get_current_datetime = real_now

    # Tampering after signing: the parameters change, the signature does not.
    url = urllib.parse.urlsplit(request.url)
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    for name, value in req_spec.get("tamper", []):
        if method == "GET" or auth == "query":
            pairs = [p for p in urllib.parse.parse_qsl(url.query, keep_blank_values=True) if p[0] != name]
            if value is not None:
                pairs.insert(0, (name, value))
            url = url._replace(query=urllib.parse.urlencode(pairs, quote_via=strict_quote))
        else:
            pairs = [p for p in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True) if p[0] != name]
            if value is not None:
                pairs.append((name, value))
            body = urllib.parse.urlencode(pairs, quote_via=strict_quote).encode()

    target = url.path + ("?" + url.query if url.query else "")
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {k: v for k, v in request.headers.items()}
    if body:
        headers["Content-Length"] = str(len(body))
    connection.request(method, target, body=body or None, headers=headers)
    response = connection.getresponse()
    text = response.read().decode("utf-8", "replace")
    connection.close()
    return response.status, text


def run_requests(spec):
    model = service_model()
    results = []
    for req_spec in spec["requests"]:
        status, body = send(spec, req_spec)
        errors = []
        if req_spec.get("validate"):
            validate_xml(model, req_spec["validate"], status, body, errors)
        results.append({"name": req_spec.get("name", ""), "status": status, "body": body,
                        "model_errors": errors})
    return results


def run_validate(spec):
    model = service_model()
    errors = []
    checked = 0
    for item in spec.get("json", []):
        with open(item["file"], encoding="utf-8") as f:
            validate_json(model, item["operation"], json.load(f), errors)
        checked += 1
    for item in spec.get("xml", []):
        with open(item["file"], encoding="utf-8") as f:
            validate_xml(model, item["operation"], item.get("status", 200), f.read(), errors)
        checked += 1
    return {"checked": checked, "errors": errors}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("requests", "validate"):
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.load(sys.stdin)
    result = run_requests(spec) if sys.argv[1] == "requests" else run_validate(spec)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""catalog.registry_check, the pure parts: AWS Signature Version 4 against AWS's own published examples
(the signing of the Amazon ECR token exchange), the WWW-Authenticate challenge, reading what a registry
token grants."""

import base64
import json
from datetime import UTC, datetime

from catalog.registry_check import _granted_push, ecr_region, parse_challenge, sigv4_headers

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's documented example key


def test_sigv4_matches_the_aws_test_suite_get_vanilla_query_order_key_case():
    headers = sigv4_headers(
        method="GET",
        url="https://example.amazonaws.com/?Param2=value2&Param1=value1",
        headers={},
        body=b"",
        region="us-east-1",
        service="service",
        access_key="AKIDEXAMPLE",
        secret_key=SECRET,
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    )


def test_sigv4_matches_the_aws_signed_post_example():
    headers = sigv4_headers(
        method="POST",
        url="http://iam.amazonaws.com/",
        headers={"Content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        body=b"Action=ListUsers&Version=2010-05-08",
        region="us-east-1",
        service="iam",
        access_key="AKIDEXAMPLE",
        secret_key=SECRET,
        now=datetime(2011, 9, 9, 23, 36, tzinfo=UTC),
    )
    assert headers["Authorization"].endswith(
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=ced6826de92d2bdeed8f846f0bf508e8559e98e4b0199114b84c54174deb456c"
    )
    other = sigv4_headers(
        method="POST",
        url="http://iam.amazonaws.com/",
        headers={"Content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        body=b"Action=ListUsers&Version=2010-05-08",
        region="us-east-1",
        service="iam",
        access_key="AKIDEXAMPLE",
        secret_key=SECRET + "x",
        now=datetime(2011, 9, 9, 23, 36, tzinfo=UTC),
    )
    assert other["Authorization"] != headers["Authorization"]


def test_challenges_and_ecr_hosts():
    assert parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"') == (
        "bearer",
        {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"},
    )
    assert parse_challenge('Basic realm="r"')[0] == "basic"
    assert ecr_region("123456789012.dkr.ecr.eu-west-1.amazonaws.com") == "eu-west-1"
    assert ecr_region("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example") is None


def _jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(claims)}.sig"


def test_a_token_granting_push_is_recognised():
    assert _granted_push(_jwt({"access": [{"type": "repository", "name": "x", "actions": ["pull", "push"]}]}))
    assert _granted_push(_jwt({"access": [{"type": "repository", "name": "x", "actions": ["*"]}]}))
    assert not _granted_push(_jwt({"access": [{"type": "repository", "name": "x", "actions": ["pull"]}]}))
    assert not _granted_push("opaque-token")

"""C23: the CloudFormation templates in infra/cloudformation lint clean and keep
the security properties CONTROLS.md promises.

The templates are read with cfn-lint's own decoder (it understands the short
intrinsic tags such as ``!Ref`` and ``!Sub`` and turns them into ``{"Ref": ...}``
and ``{"Fn::Sub": ...}``), and linted through cfn-lint's Python API, once for
the module.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_by_config
from cfnlint.decode import decode

from graphgate.server.audit import AuditEventType

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "infra" / "cloudformation"
TEMPLATES = ("network", "waf", "storage", "audit", "deploy-roles", "secrets-rotation")
#: Regions the templates are linted for (resource availability differs by region).
LINT_REGIONS = ["us-east-1", "eu-west-1"]

Template = dict[str, Any]


# --------------------------------------------------------------- helpers ----


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    loaded: dict[str, Template] = {}
    for name in TEMPLATES:
        template, problems = decode(str(TEMPLATE_DIR / f"{name}.yaml"))
        assert not problems, f"{name}.yaml does not parse: {problems}"
        assert template is not None
        loaded[name] = template
    return loaded


@pytest.fixture(scope="module")
def lint_findings() -> dict[str, list[str]]:
    paths = sorted(TEMPLATE_DIR.glob("*.yaml"))
    matches = lint_by_config(
        ManualArgs(templates=[str(p) for p in paths], regions=LINT_REGIONS, include_checks=["I"])
    )
    findings: dict[str, list[str]] = {p.stem: [] for p in paths}
    for match in matches:
        findings.setdefault(Path(match.filename).stem, []).append(
            f"{match.rule.id} line {match.linenumber}: {match.message}"
        )
    return findings


def resources(template: Template, type_: str) -> dict[str, Template]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == type_}


def default(template: Template, value: Any) -> Any:
    """``value``, or the Default of the parameter it references."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return template["Parameters"][value["Ref"]]["Default"]
    return value


def walk(node: Any) -> Iterator[Any]:
    """Every dict and list inside ``node`` (itself included)."""
    yield node
    if isinstance(node, dict):
        for child in node.values():
            yield from walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from walk(child)


def sub_text(value: Any) -> str:
    """The template string of a ``Fn::Sub`` (or a plain string)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    assert isinstance(value, str), value
    return value


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def waf_rules(template: Template) -> dict[str, Template]:
    """The web ACL's rules by name, optional (Fn::If-wrapped) ones included."""
    rules: dict[str, Template] = {}
    for entry in template["Resources"]["WebAcl"]["Properties"]["Rules"]:
        rule = entry["Fn::If"][1] if "Fn::If" in entry else entry
        rules[rule["Name"]] = rule
    return rules


def iam_statements(template: Template) -> Iterator[tuple[str, Template]]:
    """Every permission statement of the roles and managed policies (not trust policies)."""
    for name, body in template["Resources"].items():
        props = body.get("Properties", {})
        documents = []
        if body["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in _unwrap(props.get("Policies", []))]
        elif body["Type"] == "AWS::IAM::ManagedPolicy":
            documents = [props["PolicyDocument"]]
        for document in documents:
            for statement in _unwrap(document["Statement"]):
                yield name, statement


def _unwrap(items: list[Any]) -> Iterator[Template]:
    """List items, taking the true branch of an ``Fn::If`` item."""
    for item in items:
        yield item["Fn::If"][1] if isinstance(item, dict) and "Fn::If" in item else item


# ------------------------------------------------------------------ lint ----


@pytest.mark.security
def test_all_templates_present() -> None:
    """C23: every template the controls name exists, and none is left out of the lint."""
    on_disk = {p.stem for p in TEMPLATE_DIR.glob("*.yaml")}
    assert on_disk == set(TEMPLATES)


@pytest.mark.security
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_passes_cfn_lint(name: str, lint_findings: dict[str, list[str]]) -> None:
    """C23: cfn-lint reports no error, warning or informational finding."""
    assert lint_findings[name] == []


@pytest.mark.security
def test_no_hard_coded_account_ids_or_regions() -> None:
    """C23: templates deploy to any account and region (pseudo parameters only)."""
    region = re.compile(r"\b(us|eu|ap|sa|ca|me|af|il|mx|cn)-[a-z]+-[0-9]\b")
    for path in TEMPLATE_DIR.glob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"(?<![0-9])[0-9]{12}(?![0-9])", text), path.name
        assert not region.search(text), path.name


# --------------------------------------------------------------- storage ----


def bucket_policies(template: Template) -> dict[str, list[Template]]:
    """Bucket logical id -> the statements of the bucket policy that targets it."""
    found: dict[str, list[Template]] = {}
    for body in resources(template, "AWS::S3::BucketPolicy").values():
        bucket = body["Properties"]["Bucket"]["Ref"]
        found[bucket] = list(body["Properties"]["PolicyDocument"]["Statement"])
    return found


@pytest.mark.security
def test_every_bucket_is_encrypted_private_and_tls_only(templates: dict[str, Template]) -> None:
    """C11/C23: every S3 bucket in every template has default encryption, all four
    public-access-block flags, ACLs disabled, and a policy denying plain HTTP."""
    buckets_seen = 0
    for name, template in templates.items():
        policies = bucket_policies(template)
        for logical_id, bucket in resources(template, "AWS::S3::Bucket").items():
            buckets_seen += 1
            where = f"{name}.yaml {logical_id}"
            props = bucket["Properties"]
            rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            algorithms = {r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules}
            assert algorithms, where
            assert algorithms <= {"aws:kms", "AES256"}, where
            assert props["PublicAccessBlockConfiguration"] == {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            }, where
            assert props["OwnershipControls"]["Rules"] == [
                {"ObjectOwnership": "BucketOwnerEnforced"}
            ], where
            assert logical_id in policies, f"{where}: no bucket policy"
            tls_denials = [
                s
                for s in policies[logical_id]
                if s["Effect"] == "Deny"
                and s["Principal"] == "*"
                and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            ]
            assert len(tls_denials) == 1, where
            denied = tls_denials[0]
            assert denied["Action"] == "s3:*", where
            targets = [sub_text(r) if "Fn::Sub" in r else r for r in denied["Resource"]]
            assert {"Fn::GetAtt": [logical_id, "Arn"]} in targets, where
            assert f"${{{logical_id}.Arn}}/*" in targets, where
    assert buckets_seen >= 4  # uploads, backups, access logs, trail


@pytest.mark.security
def test_data_buckets_use_the_rotating_kms_key(templates: dict[str, Template]) -> None:
    """C11: uploads and backups are SSE-KMS with the template's own key, rotation on."""
    storage = templates["storage"]
    keys = resources(storage, "AWS::KMS::Key")
    for logical_id in ("UploadsBucket", "BackupsBucket"):
        rule = storage["Resources"][logical_id]["Properties"]["BucketEncryption"][
            "ServerSideEncryptionConfiguration"
        ][0]
        by_default = rule["ServerSideEncryptionByDefault"]
        assert by_default["SSEAlgorithm"] == "aws:kms"
        key_id = by_default["KMSMasterKeyID"]["Fn::GetAtt"][0]
        assert keys[key_id]["Properties"]["EnableKeyRotation"] is True
        statements = bucket_policies(storage)[logical_id]
        # A presigned request cannot pick another algorithm or key.
        assert {s["Sid"] for s in statements} >= {"DenyOtherEncryption", "DenyOtherKmsKey"}


@pytest.mark.security
def test_backups_are_versioned_and_multipart_leftovers_expire(
    templates: dict[str, Template],
) -> None:
    """C11/C23: backups keep replaced versions; both buckets abort stale multipart uploads."""
    storage = templates["storage"]["Resources"]
    assert storage["BackupsBucket"]["Properties"]["VersioningConfiguration"] == {
        "Status": "Enabled"
    }
    for logical_id in ("UploadsBucket", "BackupsBucket"):
        rules = list(_unwrap(storage[logical_id]["Properties"]["LifecycleConfiguration"]["Rules"]))
        aborts = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
        assert aborts, logical_id
        assert aborts[0]["Status"] == "Enabled", logical_id
        assert aborts[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1


@pytest.mark.security
def test_uploads_cors_allows_only_put_and_post_from_one_https_origin(
    templates: dict[str, Template],
) -> None:
    """C19/C23: browsers may PUT/POST presigned uploads from the configured origin only."""
    storage = templates["storage"]
    (rule,) = storage["Resources"]["UploadsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert sorted(rule["AllowedMethods"]) == ["POST", "PUT"]
    assert rule["AllowedOrigins"] == [{"Ref": "UploadAllowedOrigin"}]
    origin = storage["Parameters"]["UploadAllowedOrigin"]
    assert "Default" not in origin  # the operator must name it
    pattern = re.compile(origin["AllowedPattern"])
    assert pattern.fullmatch("https://console.example.com")
    for refused in ("*", "http://console.example.com", "https://a.example.com/path", "null"):
        assert not pattern.fullmatch(refused), refused
    assert "CorsConfiguration" not in storage["Resources"]["BackupsBucket"]["Properties"]


# ------------------------------------------------------------------- WAF ----


@pytest.mark.security
def test_waf_rate_rule_is_3000_per_5_minutes_per_ip(templates: dict[str, Template]) -> None:
    """C23: per-IP rate rule, limit a parameter (default 3000, 100-20000), 5-minute window."""
    waf = templates["waf"]
    rule = waf_rules(waf)["rate-limit-per-ip"]
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement["Limit"] == {"Ref": "RateLimitPerFiveMinutes"}
    parameter = waf["Parameters"]["RateLimitPerFiveMinutes"]
    assert parameter["Type"] == "Number"
    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (
        3000,
        100,
        20000,
    )
    assert statement["AggregateKeyType"] == "IP"
    assert statement["EvaluationWindowSec"] == 300
    response = rule["Action"]["Block"]["CustomResponse"]
    assert response == {"ResponseCode": 429, "CustomResponseBodyKey": "rate_limited"}


@pytest.mark.security
def test_waf_allow_list_bypasses_the_rate_rule_only(templates: dict[str, Template]) -> None:
    """C23: allow-listed addresses skip the rate rule, never the SQLi/XSS/size rules."""
    waf = templates["waf"]
    rules = waf_rules(waf)
    scope_down = rules["rate-limit-per-ip"]["Statement"]["RateBasedStatement"]["ScopeDownStatement"]
    reference = scope_down["NotStatement"]["Statement"]["IPSetReferenceStatement"]
    assert reference == {"Arn": {"Fn::GetAtt": ["AllowListIpSet", "Arn"]}}
    users = [
        name
        for name, rule in rules.items()
        if any(isinstance(n, dict) and "IPSetReferenceStatement" in n for n in walk(rule))
    ]
    assert users == ["rate-limit-per-ip"]
    assert waf["Parameters"]["AllowListCidrs"]["Default"] == ""


CONTENT_LENGTH_SAMPLES = [
    *range(8_388_000, 8_390_001),
    0,
    1,
    8192,
    838_860,
    8_000_000,
    8_388_608,
    8_399_999,
    9_000_000,
    9_999_999,
    10_000_000,
    99_999_999,
    2**31,
    10**15,
]


@pytest.mark.security
def test_waf_refuses_bodies_over_8_mb(templates: dict[str, Template]) -> None:
    """C22/C23: a declared body over 8 MB (8,388,608 bytes) is refused with 413.

    WAF sees only the first 8 KB of a body on a load balancer, so the rule reads
    Content-Length; its pattern must match exactly the values above 8 MB.
    """
    rule = waf_rules(templates["waf"])["body-over-8mb"]
    statement = rule["Statement"]["RegexMatchStatement"]
    assert statement["FieldToMatch"] == {"SingleHeader": {"Name": "content-length"}}
    pattern = re.compile(statement["RegexString"])
    for size in CONTENT_LENGTH_SAMPLES:
        assert bool(pattern.search(str(size))) is (size > 8 * 1024 * 1024), size
    assert pattern.search("0008388609")  # leading zeros do not hide a size
    assert not pattern.search("8388609 ")
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 413


@pytest.mark.security
def test_waf_refuses_headers_over_8_kb(templates: dict[str, Template]) -> None:
    """C22/C23: headers beyond 8 KB (one header or all together) are refused."""
    rule = waf_rules(templates["waf"])["headers-over-8kb"]
    statement = rule["Statement"]["SizeConstraintStatement"]
    headers = statement["FieldToMatch"]["Headers"]
    assert headers["MatchScope"] == "ALL"
    assert headers["MatchPattern"] == {"All": {}}
    assert headers["OversizeHandling"] == "MATCH"  # beyond what WAF can see counts as too big
    assert (statement["ComparisonOperator"], statement["Size"]) == ("GT", 8192)
    assert "Block" in rule["Action"]


@pytest.mark.security
@pytest.mark.parametrize(
    ("rule_name", "statement_type"),
    [("sql-injection", "SqliMatchStatement"), ("cross-site-scripting", "XssMatchStatement")],
)
def test_waf_blocks_injection(
    templates: dict[str, Template], rule_name: str, statement_type: str
) -> None:
    """C23: SQL injection and XSS in the URI, query string, cookies and body are refused (403)."""
    rule = waf_rules(templates["waf"])[rule_name]
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 403
    fields = set()
    for node in walk(rule["Statement"]):
        if isinstance(node, dict) and statement_type in node:
            fields.update(node[statement_type]["FieldToMatch"])
    assert fields == {"UriPath", "QueryString", "Cookies", "Body"}


@pytest.mark.security
def test_waf_error_bodies_are_json(templates: dict[str, Template]) -> None:
    """C23: 429, 403 and 413 answers carry JSON bodies in the sidecar's error shape."""
    waf = templates["waf"]
    bodies = waf["Resources"]["WebAcl"]["Properties"]["CustomResponseBodies"]
    codes: dict[int, str] = {}
    for rule in waf_rules(waf).values():
        response = rule.get("Action", {}).get("Block", {}).get("CustomResponse")
        if response:
            assert response["CustomResponseBodyKey"] in bodies, rule["Name"]
            codes[response["ResponseCode"]] = response["CustomResponseBodyKey"]
    assert {429, 403, 413} <= set(codes)
    for code in (429, 403, 413):
        body = bodies[codes[code]]
        assert body["ContentType"] == "APPLICATION_JSON"
        document = json.loads(body["Content"])
        assert set(document) == {"code", "message", "details"}
    assert json.loads(bodies["rate_limited"]["Content"])["code"] == "RESOURCE_EXHAUSTED"


@pytest.mark.security
def test_waf_optional_rules_are_off_by_default(templates: dict[str, Template]) -> None:
    """C23: geo-block, the managed core rule set and logging are opt-in."""
    waf = templates["waf"]
    assert waf["Parameters"]["BlockedCountryCodes"]["Default"] == ""
    assert waf["Parameters"]["EnableCoreRuleSet"]["Default"] == "false"
    assert waf["Parameters"]["EnableLogging"]["Default"] == "false"
    optional = {
        entry["Fn::If"][1]["Name"]: entry["Fn::If"][0]
        for entry in waf["Resources"]["WebAcl"]["Properties"]["Rules"]
        if "Fn::If" in entry
    }
    assert optional == {"geo-block": "HasGeoBlock", "aws-core-rule-set": "CoreRuleSetEnabled"}
    assert waf["Resources"]["WafLogging"]["Condition"] == "LoggingEnabled"
    redacted = waf["Resources"]["WafLogging"]["Properties"]["RedactedFields"]
    assert {f["SingleHeader"]["Name"] for f in redacted} == {"authorization", "x-api-key", "cookie"}


# -------------------------------------------------------- network / audit ----


def _is_false_switch(template: Template, parameter: str) -> None:
    spec = template["Parameters"][parameter]
    assert spec["Default"] == "false"
    assert sorted(spec["AllowedValues"]) == ["false", "true"]


@pytest.mark.security
def test_flow_logs_are_a_switch_defaulting_off_and_encrypted(
    templates: dict[str, Template],
) -> None:
    """C23: VPC flow logs are off unless EnableFlowLogs=true, and then KMS-encrypted."""
    network = templates["network"]
    _is_false_switch(network, "EnableFlowLogs")
    assert network["Conditions"]["FlowLogsEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableFlowLogs"}, "true"]
    }
    flow_log = network["Resources"]["VpcFlowLog"]
    assert flow_log["Condition"] == "FlowLogsEnabled"
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    group = network["Resources"]["FlowLogGroup"]["Properties"]
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["FlowLogKey", "Arn"]}
    assert network["Resources"]["FlowLogKey"]["Properties"]["EnableKeyRotation"] is True


@pytest.mark.security
def test_cloudtrail_is_a_switch_defaulting_off_with_validation(
    templates: dict[str, Template],
) -> None:
    """C23: CloudTrail is off unless EnableCloudTrail=true; then encrypted and validated."""
    audit = templates["audit"]
    _is_false_switch(audit, "EnableCloudTrail")
    assert audit["Conditions"]["TrailEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableCloudTrail"}, "true"]
    }
    trail = audit["Resources"]["Trail"]
    assert trail["Condition"] == "TrailEnabled"
    assert trail["Properties"]["EnableLogFileValidation"] is True
    assert trail["Properties"]["KMSKeyId"] == {"Fn::GetAtt": ["AuditKey", "Arn"]}
    assert trail["Properties"]["S3BucketName"] == {"Ref": "TrailBucket"}


@pytest.mark.security
def test_data_stores_accept_only_the_service_group(templates: dict[str, Template]) -> None:
    """C23: PostgreSQL 5432 and Valkey 6379 are reachable from the service group only,
    the load balancer only reaches the service ports, and only it faces clients."""
    network = templates["network"]
    inbound: dict[str, list[tuple[Any, Any, Any]]] = {}
    for name, group in resources(network, "AWS::EC2::SecurityGroup").items():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            source = rule.get("SourceSecurityGroupId", {}).get("Ref") or rule.get("CidrIp")
            inbound.setdefault(name, []).append((rule["FromPort"], rule["ToPort"], source))
    for rule in resources(network, "AWS::EC2::SecurityGroupIngress").values():
        props = rule["Properties"]
        inbound.setdefault(props["GroupId"]["Ref"], []).append(
            (props["FromPort"], props["ToPort"], props["SourceSecurityGroupId"]["Ref"])
        )
    assert inbound["DatabaseSecurityGroup"] == [(5432, 5432, "ServiceSecurityGroup")]
    assert inbound["CacheSecurityGroup"] == [(6379, 6379, "ServiceSecurityGroup")]
    assert inbound["EndpointSecurityGroup"] == [(443, 443, "ServiceSecurityGroup")]
    assert inbound["LoadBalancerSecurityGroup"] == [(443, 443, {"Ref": "ClientIngressCidr"})]
    assert {source for *_, source in inbound["ServiceSecurityGroup"]} == {
        "LoadBalancerSecurityGroup",
        "ServiceSecurityGroup",
    }
    lb_egress = network["Resources"]["LoadBalancerSecurityGroup"]["Properties"][
        "SecurityGroupEgress"
    ]
    assert {(r["FromPort"]["Ref"], r["DestinationSecurityGroupId"]["Ref"]) for r in lb_egress} == {
        ("GrpcPort", "ServiceSecurityGroup"),
        ("HttpPort", "ServiceSecurityGroup"),
    }
    for closed in ("DatabaseSecurityGroup", "CacheSecurityGroup", "EndpointSecurityGroup"):
        egress = network["Resources"][closed]["Properties"]["SecurityGroupEgress"]
        assert [r["CidrIp"] for r in egress] == ["127.0.0.1/32"], closed


@pytest.mark.security
def test_network_spans_2_to_5_zones_with_private_endpoints(templates: dict[str, Template]) -> None:
    """C23: 2-5 AZs by parameter; S3 gateway and Secrets Manager, ECR, Logs interface endpoints."""
    network = templates["network"]
    assert network["Parameters"]["AzCount"]["AllowedValues"] == ["2", "3", "4", "5"]
    endpoints = {
        sub_text(e["Properties"]["ServiceName"]).rsplit(".", 1)[-1]
        if not sub_text(e["Properties"]["ServiceName"]).endswith(("ecr.api", "ecr.dkr"))
        else sub_text(e["Properties"]["ServiceName"]).split("}.", 1)[1]: e["Properties"]
        for e in resources(network, "AWS::EC2::VPCEndpoint").values()
    }
    assert endpoints["s3"]["VpcEndpointType"] == "Gateway"
    for service in ("secretsmanager", "ecr.api", "ecr.dkr", "logs"):
        assert endpoints[service]["VpcEndpointType"] == "Interface", service
        assert endpoints[service]["PrivateDnsEnabled"] is True, service
        assert endpoints[service]["SecurityGroupIds"] == [{"Ref": "EndpointSecurityGroup"}]
    for subnet in resources(network, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False


@pytest.mark.security
def test_operator_auth_failure_alarm_is_more_than_5_in_300_seconds(
    templates: dict[str, Template],
) -> None:
    """C20: more than 5 failed operator authentications in 5 minutes alarm the auth topic,
    counted from the audit event the service really emits."""
    audit = templates["audit"]
    metric_filter = audit["Resources"]["OperatorAuthFailuresFilter"]["Properties"]
    assert metric_filter["FilterPattern"] == '{ $.event_type = "operator_auth_failure" }'
    assert AuditEventType.OPERATOR_AUTH_FAILURE.value == "operator_auth_failure"
    assert metric_filter["LogGroupName"] == {"Ref": "AuditLogGroup"}
    (transformation,) = metric_filter["MetricTransformations"]
    assert transformation["MetricNamespace"] == "Graphgate/Security"
    assert transformation["MetricName"] == "OperatorAuthFailures"
    alarm = audit["Resources"]["OperatorAuthFailureAlarm"]["Properties"]
    assert alarm["Namespace"] == "Graphgate/Security"
    assert alarm["MetricName"] == "OperatorAuthFailures"
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] * alarm["EvaluationPeriods"] == 300
    assert default(audit, alarm["Threshold"]) == 5
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AuthAlarmTopic"}]
    assert audit["Resources"]["AuditLogGroup"]["Properties"]["KmsKeyId"] == {
        "Fn::GetAtt": ["AuditKey", "Arn"]
    }


@pytest.mark.security
def test_rate_limit_and_5xx_alarms_reach_the_api_topic(templates: dict[str, Template]) -> None:
    """C17/C23: rate-limit refusals (service and WAF) and the 5xx rate alarm the api topic."""
    audit = templates["audit"]
    refusals = audit["Resources"]["RateLimitRefusalsFilter"]["Properties"]
    assert refusals["FilterPattern"] == '{ $.event_type = "rate_limit_exceeded" }'
    assert AuditEventType.RATE_LIMIT_EXCEEDED.value == "rate_limit_exceeded"
    for alarm in ("RateLimitRefusalAlarm", "WafRateLimitAlarm", "ServerErrorRateAlarm"):
        props = audit["Resources"][alarm]["Properties"]
        assert props["AlarmActions"] == [{"Ref": "ApiAlarmTopic"}], alarm
    # The WAF alarm watches the rule waf.yaml really names.
    waf = templates["waf"]
    rate_metric = waf_rules(waf)["rate-limit-per-ip"]["VisibilityConfig"]["MetricName"]
    acl_name = waf["Resources"]["WebAcl"]["Properties"]["Name"]
    waf_alarm = audit["Resources"]["WafRateLimitAlarm"]["Properties"]
    dims = {d["Name"]: d["Value"] for d in waf_alarm["Dimensions"]}
    assert sub_text(rate_metric) == sub_text(acl_name) + "-rate-limit-per-ip"
    assert sub_text(dims["Rule"]) == "${WebAclName}-rate-limit-per-ip"


@pytest.mark.security
def test_one_kms_encrypted_topic_per_component(templates: dict[str, Template]) -> None:
    """C23: auth, api and storage alarms go to separate SNS topics, each KMS-encrypted."""
    audit = templates["audit"]
    topics = resources(audit, "AWS::SNS::Topic")
    components = {}
    for name, topic in topics.items():
        props = topic["Properties"]
        assert props["KmsMasterKeyId"] == {"Fn::GetAtt": ["AuditKey", "Arn"]}, name
        tags = {t["Key"]: t["Value"] for t in props["Tags"]}
        components[tags["Component"]] = name
    assert set(components) == {"auth", "api", "storage"}
    for alarm in resources(audit, "AWS::CloudWatch::Alarm").values():
        (action,) = alarm["Properties"]["AlarmActions"]
        assert action["Ref"] in topics


# ------------------------------------------------------------ IAM / OIDC ----

REPO_SUBS = {
    "repo:acme/graphgate:ref:refs/heads/main": True,
    "repo:acme/graphgate:ref:refs/heads/release/1.4": True,
    "repo:acme/graphgate:ref:refs/tags/v1.4.0": True,
    "repo:acme/graphgate:ref:refs/heads/feature/x": False,
    "repo:acme/graphgate:ref:refs/heads/mainline": False,
    "repo:acme/graphgate:pull_request": False,
    "repo:acme/graphgate:environment:production": False,
    "repo:acme/graphgate:ref:refs/tags/1.4.0": False,
    "repo:acme/graphgate-fork:ref:refs/heads/main": False,
    "repo:evil/graphgate:ref:refs/heads/main": False,
}


@pytest.mark.security
def test_oidc_trust_limits_sub_to_main_release_and_version_tags(
    templates: dict[str, Template],
) -> None:
    """C23: only GitHub workflows of one repository on main, release/* or v* tags,
    with audience sts.amazonaws.com, can assume the deploy role."""
    roles = templates["deploy-roles"]
    trust = roles["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]
    assert condition["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
    }
    assert set(condition) == {"StringEquals", "StringLike"}
    subs = condition["StringLike"]["token.actions.githubusercontent.com:sub"]
    patterns = [sub_text(p) for p in subs]
    assert patterns == [
        "repo:${GitHubOrg}/${GitHubRepo}:ref:refs/heads/main",
        "repo:${GitHubOrg}/${GitHubRepo}:ref:refs/heads/release/*",
        "repo:${GitHubOrg}/${GitHubRepo}:ref:refs/tags/v*",
    ]
    concrete = [
        p.replace("${GitHubOrg}", "acme").replace("${GitHubRepo}", "graphgate") for p in patterns
    ]
    for sub, allowed in REPO_SUBS.items():
        # IAM StringLike: * is any run of characters, ? one character.
        assert any(fnmatch.fnmatchcase(sub, p) for p in concrete) is allowed, sub
    assert roles["Parameters"]["ExistingOidcProviderArn"]["Default"] == ""
    assert roles["Resources"]["GitHubOidcProvider"]["Properties"]["ClientIdList"] == [
        "sts.amazonaws.com"
    ]


#: Actions that have no resource-level permissions, so "*" is their only resource.
UNSCOPED_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "cloudformation:ValidateTemplate",
    "cloudformation:GetTemplateSummary",
    "secretsmanager:ListSecrets",
    "secretsmanager:GetRandomPassword",
}


@pytest.mark.security
@pytest.mark.parametrize("name", TEMPLATES)
def test_iam_permissions_are_least_privilege(templates: dict[str, Template], name: str) -> None:
    """C23: no wildcard actions; "*" resources only for actions that cannot be scoped;
    iam:PassRole only to a named service."""
    for owner, statement in iam_statements(templates[name]):
        actions = as_list(statement["Action"])
        for action in actions:
            assert action != "*", owner
            assert not action.endswith(":*"), (owner, action)
        if statement["Effect"] == "Allow" and statement["Resource"] == "*":
            assert set(actions) <= UNSCOPED_ACTIONS, (owner, actions)
        if "iam:PassRole" in actions:
            assert "iam:PassedToService" in statement["Condition"]["StringEquals"], owner


# -------------------------------------------------------------- rotation ----


@pytest.mark.security
def test_rotation_schedule_is_monthly_and_disabled_by_default(
    templates: dict[str, Template],
) -> None:
    """C13: the scheduled rotation exists, runs monthly, and is DISABLED unless enabled."""
    rotation = templates["secrets-rotation"]
    schedule = rotation["Resources"]["MonthlyRotation"]["Properties"]
    assert schedule["State"] == {"Ref": "ScheduleState"}
    assert rotation["Parameters"]["ScheduleState"]["Default"] == "DISABLED"
    assert sorted(rotation["Parameters"]["ScheduleState"]["AllowedValues"]) == [
        "DISABLED",
        "ENABLED",
    ]
    expression = default(rotation, schedule["ScheduleExpression"])
    assert re.fullmatch(r"cron\(\d+ \d+ 1 \* \? \*\)", expression), expression
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["RotationHandler", "Arn"]}
    handler = rotation["Resources"]["RotationHandler"]["Properties"]
    assert handler["ImageConfig"]["Command"] == ["graphgate.server.secrets.rotation.handler"]


SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:"
SECRETS = {
    "graphgate/prod-AbC123": True,
    "graphgate/prod/postgres-AbC123": True,
    "graphgate/prod/jwt-AbC123": True,
    "graphgate/staging-AbC123": False,
    "graphgate/staging/postgres-AbC123": False,
    "graphgate/production-AbC123": False,
    "graphgate/prodx/postgres-AbC123": False,
    "graphgate/prod-admin-AbC123": False,
    "other/prod-AbC123": False,
}


@pytest.mark.security
def test_rotation_may_touch_only_this_environments_graphgate_secrets(
    templates: dict[str, Template],
) -> None:
    """C12/C13: the handler's Secrets Manager rights cover graphgate/ENV and
    graphgate/ENV/* and nothing else."""
    rotation = templates["secrets-rotation"]
    scoped = [
        statement
        for _, statement in iam_statements(rotation)
        if any(a.startswith("secretsmanager:") for a in as_list(statement["Action"]))
        and statement["Resource"] != "*"
    ]
    (statement,) = scoped
    assert "secretsmanager:PutSecretValue" in statement["Action"]
    prefix = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    patterns = [sub_text(r) for r in statement["Resource"]]
    assert patterns == [prefix + "graphgate/${Env}-??????", prefix + "graphgate/${Env}/*"]
    concrete = [p.replace(prefix, SECRET_ARN).replace("${Env}", "prod") for p in patterns]
    for secret, allowed in SECRETS.items():
        assert any(fnmatch.fnmatchcase(SECRET_ARN + secret, p) for p in concrete) is allowed, secret


@pytest.mark.security
def test_cross_stack_references_resolve(templates: dict[str, Template]) -> None:
    """C23: the rotation Lambda imports exports network.yaml really defines (private
    subnets and the one security group the data stores accept)."""
    exported = {
        sub_text(o["Export"]["Name"]).replace("${AWS::StackName}", "${NetworkStackName}")
        for o in templates["network"]["Outputs"].values()
    }
    vpc_config = templates["secrets-rotation"]["Resources"]["RotationHandler"]["Properties"][
        "VpcConfig"
    ]
    imports = [
        node["Fn::ImportValue"]
        for node in walk(vpc_config)
        if isinstance(node, dict) and "Fn::ImportValue" in node
    ]
    assert {sub_text(i) for i in imports} == {
        "${NetworkStackName}-PrivateSubnetIds",
        "${NetworkStackName}-ServiceSecurityGroupId",
    }
    assert {sub_text(i) for i in imports} <= exported

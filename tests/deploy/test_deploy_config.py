"""The deployment files, checked offline (no Docker engine or cluster here): the Kubernetes
overlays render and validate against the API schemas, the compose file parses, the alert
rules pass promtool's checks and unit tests, the dashboard's queries parse, and the gateway
configuration passes `nginx -t`."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dev.layout import Layout
from dev.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def run(*argv: str, stdin: str | None = None, env: dict | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}:{os.environ.get('PATH', '')}")
    assert found, f"{name} is not installed: run `make install infra` (dev/ensure-infra.sh)"
    return found


@pytest.mark.parametrize("overlay", ["base", "overlays/dev", "overlays/prod"])
def test_kubernetes_manifests_render_and_validate(overlay):
    rendered = run(tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / overlay))

    run(tool("kubernetes-validate"), "--strict", "--quiet", "-", stdin=rendered)
    kinds = set(re.findall(r"^kind: (\w+)$", rendered, re.MULTILINE))
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Ingress",
        "Job",
        "ConfigMap",
    } <= kinds
    assert "v1beta1" not in rendered  # removed API versions validate silently


def test_every_deployment_has_probes_limits_and_runs_unprivileged():
    rendered = run(tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "base"))
    for doc in rendered.split("\n---\n"):
        if not re.search(r"^kind: Deployment$", doc, re.MULTILINE):
            continue
        assert "livenessProbe" in doc and "limits" in doc, doc[:200]
        assert "allowPrivilegeEscalation: false" in doc, doc[:200]


def test_the_upload_api_cannot_start_without_the_shared_signing_secret():
    """Replicas that each made a secret of their own would refuse one another's policies."""
    rendered = run(tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "base"))
    docs = [yaml.safe_load(doc) for doc in rendered.split("\n---\n")]
    [api] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "upload-api"]
    [container] = api["spec"]["template"]["spec"]["containers"]
    [secret] = [e for e in container["env"] if e["name"] == "UPLOAD_SIGNING_SECRET"]

    reference = secret["valueFrom"]["secretKeyRef"]
    assert reference["key"] == "UPLOAD_SIGNING_SECRET" and not reference.get("optional")


YAML_FILES = sorted([ROOT / "docker-compose.yml", *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_yaml_file_names_a_key_twice(path):
    """YAML parsers, docker-compose's and kubectl's too, keep the last of two equal keys
    silently: the first one's settings are lost without a word."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            keys = [key.value for key, _ in node.value if key.value != "<<"]
            twice = sorted({key for key in keys if keys.count(key) > 1})
            assert not twice, f"{path.name} line {node.start_mark.line + 1}: {twice} twice"
            return super().construct_mapping(node, deep)

    assert list(yaml.load_all(path.read_text(), Loader=UniqueKeys))


def test_compose_file_is_valid():
    env = {**os.environ, "UPLOAD_SIGNING_SECRET": "x"}
    run(tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", "-q", env=env)


def test_alert_rules_pass_promtool_checks_and_unit_tests():
    run(tool("promtool"), "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml"))
    run(tool("promtool"), "test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml"))


def test_the_kubernetes_prometheus_rule_carries_the_same_alerts_as_alerts_yml():
    import yaml

    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    rule = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheus-rule.yaml").read_text())

    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == alerts["groups"]


def test_dashboard_panels_are_unique_and_their_queries_parse(tmp_path):
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "opencap.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"panel:query:{i}", "expr": e.replace("$__rate_interval", "5m")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "rules.yml").write_text(json.dumps(rules))

    assert len(ids) == len(set(ids)) and dashboard["uid"]
    run(tool("promtool"), "check", "rules", str(tmp_path / "rules.yml"))


def test_local_gateway_configuration_passes_nginx_checks():
    stack = Stack(Layout(name="nginx-check", base_port=28000, tls_host="127.0.0.9"))
    stack.prepare_gateway()
    conf = stack.layout.run_dir / "nginx" / "nginx.conf"

    run(tool("nginx"), "-t", "-p", str(conf.parent), "-c", str(conf))


@pytest.mark.parametrize("name", ["compose.conf", "k8s.conf"])
def test_container_gateway_configurations_pass_nginx_checks(name, tmp_path):
    """The compose and Kubernetes gateway files (each a conf.d file of the nginx image), in
    an `http` block as the image has it, with their services and paths made local."""
    from dev.certs import CERTS, ensure

    ensure(CERTS)
    text = (DEPLOY / "nginx" / name).read_text()
    text = re.sub(r"server [a-z]+-api:8000", "server 127.0.0.1:8000", text)
    text = text.replace("/etc/nginx/opencap/routes.conf", str(DEPLOY / "nginx" / "routes.conf"))
    text = text.replace("/etc/nginx/certs", str(CERTS))
    (tmp_path / "default.conf").write_text(text)
    temp = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; {temp} include {tmp_path}/default.conf; }}\n"
    )

    run(tool("nginx"), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"))

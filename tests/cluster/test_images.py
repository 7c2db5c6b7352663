"""The images, read statically: multi-stage, pinned, non-root, data and presets inside, buildable offline
but for the package indexes; and every package the components import is installed in the image each
component runs in. tests/containers builds nothing but runs what `make images` built."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

from tests.conftest import REPO

IMAGES = REPO / "images"
FLAVOURS = ("cpu", "gpu", "serve")
BUILD_TOOLS = {"build-essential", "gcc", "g++", "make", "cmake", "git", "clang", "ninja-build", "python3-dev"}
# Triton (vLLM, torch.compile) compiles kernel launchers with the system C compiler at run time
RUNTIME_COMPILER = {"gpu": {"gcc", "libc6-dev"}, "serve": {"gcc", "libc6-dev"}}
# a pip command and its subcommand: pip's own options (--python) must come before it, as pip 22.3+ requires
PIP_INSTALL = re.compile(r"\bpip((?: --?[\w-]+(?:[ =][^\s-]\S*)?)*) install\b")
LOCK_LINE = re.compile(r"^([a-z0-9][a-z0-9._-]*)==([^\s]+) --hash=sha256:[0-9a-f]{64}$")
# imported only on code paths a given image never takes, with the reason
NOT_IN_IMAGE = {"cpu": {"vllm": "the vLLM backends run on GPU stages, in the gpu image"}}
# modules more than one distribution provides, beyond what this environment has installed
PROVIDERS = {"faiss": {"faiss-cpu", "faiss-gpu"}}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(flavour: str) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined and comments dropped."""
    text = (IMAGES / f"Dockerfile.{flavour}").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    logical = re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines()
    parts = (line.strip().partition(" ") for line in logical if line.strip())
    return [Instruction(keyword.upper(), args.strip()) for keyword, _, args in parts]


def dockerfile_stages(flavour: str) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions(flavour):
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def base_images(flavour: str) -> list[str]:
    """Each stage's base image, with the global ARG defaults substituted."""
    instructions = dockerfile_instructions(flavour)
    defaults = dict(i.args.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.args)
    images = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    return [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], image) for image in images]


def args_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.args for instruction in stage if instruction.keyword == keyword]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock(flavour: str) -> dict[str, str]:
    pins = {}
    for line in (IMAGES / f"requirements-{flavour}.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        match = LOCK_LINE.match(line)
        assert match, f"requirements-{flavour}.txt: {line!r} is not NAME==VERSION --hash=sha256:..."
        pins[normalise(match[1])] = match[2]
    return pins


def top_level_requirements(path: Path) -> set[str]:
    names = (re.split(r"[<>=!~\[; ]", line.strip())[0] for line in path.read_text().splitlines())
    return {normalise(name) for name in names if name and not name.startswith("#")}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_multi_stage_pinned_non_root_with_data_and_presets(flavour):
    stages = dockerfile_stages(flavour)
    assert len(stages) >= 2, "build in one stage, run in another"
    final = stages[-1]
    for image in base_images(flavour):
        assert re.search(r":\d+\.\d+\.\d+", image), f"{flavour}: base image {image!r} is not pinned to a release"
    users = args_of(final, "USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"{flavour}: the final stage must not run as root"
    copies = args_of(final, "COPY")
    assert "--from=build /opt/venv /opt/venv" in copies
    env = " ".join(args_of(final, "ENV"))
    for folder, variable in (("data", "GR2_DATA_ROOT"), ("configs", "GR2_CONFIGS")):
        [destination] = [c.split()[1] for c in copies if c.split()[0] == folder]
        assert f"{variable}={destination}" in env, f"{flavour}: {variable} must name {destination}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_final_stage_installs_no_build_tools_and_packages_only_from_the_lock(flavour):
    stages = dockerfile_stages(flavour)
    runs = " ".join(args_of(stages[-1], "RUN"))
    installed = set(re.findall(r"apt-get install ([^&]*)", runs)[0].split()) if "apt-get install" in runs else set()
    packages = {p.split("=")[0] for p in installed if not p.startswith("-")}
    assert not (packages & BUILD_TOOLS) - RUNTIME_COMPILER.get(flavour, set())
    assert "gcc" not in installed, f"{flavour}: pin gcc's version"
    assert not PIP_INSTALL.search(runs), f"{flavour}: the final stage installs with pip"
    build_installs = [r for r in args_of(stages[0], "RUN") if PIP_INSTALL.search(r)]
    assert "--require-hashes" in build_installs[0] and "--no-deps" in build_installs[0]
    assert "/tmp/requirements.txt" in build_installs[0]
    assert f"images/requirements-{flavour}.txt /tmp/requirements.txt" in args_of(stages[0], "COPY")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_pip_is_told_its_target_before_the_subcommand(flavour):
    """`pip install --python ENV` is refused by current pip; `pip --python ENV install` is its form."""
    runs = [args for stage in dockerfile_stages(flavour) for args in args_of(stage, "RUN") if " install" in args]
    pip_runs = [args for args in runs if re.search(r"\bpip\b", args)]
    assert pip_runs, f"{flavour}: no pip step found"
    for args in pip_runs:
        match = PIP_INSTALL.search(args)
        assert match and "--python /opt/venv/bin/python" in match[1], f"{flavour}: {args!r}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_builds_offline_but_for_package_indexes_and_keep_no_ca(flavour):
    """No `# syntax=` frontend to pull; the proxy's CA reaches the pip steps as the secret `pip-cert` only, never
    a file or variable of a layer; local package folders come in as build arguments, which no image keeps."""
    text = (IMAGES / f"Dockerfile.{flavour}").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE), f"{flavour}: a syntax line pulls a frontend image"
    build, final = dockerfile_stages(flavour)[0], dockerfile_stages(flavour)[-1]
    for args in args_of(build, "RUN"):
        if PIP_INSTALL.search(args):
            assert args.startswith("--mount=type=secret,id=pip-cert "), f"{flavour}: {args[:80]!r}"
    for keyword in ("COPY", "ADD"):
        for args in args_of(build, keyword) + args_of(final, keyword):
            assert not re.search(r"\.(crt|pem)\b", args), f"{flavour}: {keyword} {args}"
    environment = " ".join(args_of(build, "ENV") + args_of(final, "ENV"))
    assert not re.search(r"PIP_CERT|SSL_CERT|REQUESTS_CA|PIP_FIND_LINKS|PIP_EXTRA_INDEX", environment)
    assert {"PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"} <= {a.split("=")[0] for a in args_of(build, "ARG")}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_lock_pins_every_top_level_requirement_and_the_project_dependencies(flavour):
    pins = lock(flavour)
    wanted = top_level_requirements(IMAGES / f"requirements-{flavour}.in")
    assert wanted - set(pins) == set()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {normalise(re.split(r"[<>=!~\[; ]", d)[0]) for d in project} - wanted == set()


def test_faiss_gpu_and_faiss_cpu_never_share_an_image():
    cpu, gpu = lock("cpu"), lock("gpu")
    assert "faiss-cpu" in cpu and "faiss-gpu" not in cpu
    assert "faiss-gpu" in gpu and "faiss-cpu" not in gpu
    assert cpu["torch"].endswith("+cpu") and "+" not in gpu["torch"]
    assert "deepspeed" in gpu and "vllm" in gpu and "kserve" in lock("serve") and "deepspeed" not in lock("serve")


# --- every package a component imports is in its image ------------------------------------------------


def imports_in(tree: ast.AST) -> set[str]:
    """Dotted names of every module imported anywhere in `tree` (relative imports are not used here)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def gr2_source(module: str) -> Path | None:
    base = REPO / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def executor_imports(source: str, function: str) -> set[str]:
    """What a component's body imports and, for each `from gr2.steps import f`, what `f` and gr2.steps at
    module level import (the step functions import their stage lazily; a component calls one of them)."""
    [body] = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == function]
    names = imports_in(body)
    called = {name.rsplit(".", 1)[1] for name in names if name.startswith("gr2.steps.")}
    for node in ast.parse(gr2_source("gr2.steps").read_text()).body:
        if not isinstance(node, ast.FunctionDef) or node.name in called:
            names |= imports_in(node)
    return names


def third_party_imports(imports: set[str]) -> set[str]:
    """Top-level third-party modules reachable from `imports`: every gr2 module reached counts with all
    its imports, lazy ones included."""
    pending, seen, found = list(imports), set(), set()
    while pending:
        module = pending.pop()
        top = module.split(".")[0]
        if top == "gr2":
            for parent in parents(module):
                source = gr2_source(parent)
                if source and parent not in seen and parent != "gr2.steps":
                    seen.add(parent)
                    pending.extend(imports_in(ast.parse(source.read_text())))
        elif top not in sys.stdlib_module_names and top not in {"components", "pipelines", "__future__"}:
            found.add(top)
    return found


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    installed = installed_distributions().get(module, [module])
    return PROVIDERS.get(module, {normalise(name) for name in installed})


def image_flavour(image: str) -> str:
    repository = image.rsplit("/", 1)[-1].split(":")[0]
    flavour = repository.removeprefix("gr2-")
    assert flavour in FLAVOURS, f"image {image!r}: no images/Dockerfile.* builds it"
    return flavour


def compiled_executors(pipeline_spec: dict) -> dict[str, tuple[str, str, str]]:
    """Executor label -> (image, function name, the component source the container runs)."""
    executors = {}
    for label, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        function = container["args"][container["args"].index("--function_to_execute") + 1]
        executors[label] = (container["image"], function, container["command"][-1])
    return executors


def test_every_package_a_component_imports_is_in_the_image_that_runs_it(beauty_gpu):
    missing = {}
    for label, (image, function, source) in compiled_executors(beauty_gpu.pipeline_spec).items():
        flavour = image_flavour(image)
        pins, exempt = lock(flavour), NOT_IN_IMAGE.get(flavour, {})
        for module in third_party_imports(executor_imports(source, function)) - set(exempt):
            if not distributions(module) & set(pins):
                missing[f"{label} in gr2-{flavour}"] = sorted(distributions(module))
    assert missing == {}, f"packages missing from the image that runs the component: {missing}"

"""Suite manifests: what to run, where its tests come from, and what to expect.

A suite is data (docs/architecture.md): a TOML file says which distribution and version
to test, where its tests come from, what the tests need (extra packages,
services and how their address is passed), which tests to deselect and why, and
which incompatibilities are known and why.  Built-in manifests live in
``suites/``; any other file is given by path.

A bad manifest is one ``ManifestError`` naming the file, the key and what was
expected -- never a KeyError three modules later.  See docs/compat.md for the
format; ``suites/requests.toml`` is the annotated example.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from greenpatch.compat_tests._manifest_table import ManifestError, Table, kind
from greenpatch.compat_tests.versions import VersionError, specifier_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the 3.9/3.10 tox envs
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "KNOWN_SERVICES",
    "SERVICE_FIELDS",
    "SUITES_DIR",
    "Deselect",
    "Expected",
    "Manifest",
    "ManifestError",
    "ProbeSpec",
    "ServiceSpec",
    "When",
    "builtin_suites",
    "load_manifest",
    "resolve_suite",
]

SUITES_DIR = Path(__file__).resolve().parent / "suites"

#: The services the harness knows how to start (services.py).
KNOWN_SERVICES = ("redis", "postgresql", "mariadb")

#: What a service's ``variables`` may name, filled from its URL (services.py).
SERVICE_FIELDS = ("url", "host", "port", "user", "password", "database")

SOURCE_KINDS = ("sdist", "path", "vcs")
ENVIRONMENT_KINDS = ("venv", "current")


@dataclass(frozen=True)
class Deselect:
    """Tests left out of both runs: node-id prefix and/or marker, with a reason."""

    reason: str
    id: str | None = None
    marker: str | None = None


@dataclass(frozen=True)
class Expected:
    """A known incompatibility: its failure under the patch is not a regression."""

    id: str
    reason: str


@dataclass(frozen=True)
class ServiceSpec:
    """A service the tests need and how its URL reaches them."""

    name: str
    #: pytest option that receives the URL (e.g. "--redis-url") ...
    option: str | None = None
    #: ... and/or the environment variable that does.
    env: str | None = None
    #: More environment variables, each a template of the URL's parts:
    #: ``{PGHOST = "{host}", PGPORT = "{port}"}`` (fields: SERVICE_FIELDS).
    variables: dict[str, str] = field(default_factory=dict)
    #: Statements run once against a server the harness started, before the
    #: tests (a role or a database the suite expects), in the service's own language.
    setup: tuple[str, ...] = ()
    #: A server of the suite's own (an echo server in its tests), started from
    #: the source tree with the suite's Python, unpatched, on a free loopback
    #: port: argv templates of "{python}" and "{port}".  Its URL is
    #: tcp://127.0.0.1:PORT; it is ready when the port accepts a connection.
    command: tuple[str, ...] = ()
    #: The command's own environment variables (templates of "{port}").
    command_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeSpec:
    #: "module:function" (the module may be a file next to the manifest).
    callable: str
    concurrency: int = 20
    delay: float = 0.3
    services: tuple[str, ...] = ()
    #: None: ``callable(context)`` (a probe written for greenpatch).  A tuple:
    #: the generic probe -- ``callable(*args, **kwargs)``, any function of the
    #: library, with "{http_url}", "{delay}" and "{<service>}" filled in.
    args: tuple[str | int | float, ...] | None = None
    kwargs: dict[str, str | int | float] = field(default_factory=dict)
    #: Why the probe is known to block the loop (a C extension doing its own
    #: I/O): the result then says so instead of leaving a bare "blocks".
    blocks: str | None = None


@dataclass(frozen=True)
class When:
    """What changes for the releases in ``versions``: added to the manifest's own
    lists (requirements, pytest args, deselections, expected failures, services)
    and environment variables, with a note of what changed and why."""

    versions: str
    note: str
    requirements: tuple[str, ...] = ()
    requirements_no_deps: tuple[str, ...] = ()
    pytest_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    deselect: tuple[Deselect, ...] = ()
    expected: tuple[Expected, ...] = ()
    services: tuple[ServiceSpec, ...] = ()

    def applies_to(self, version: str) -> bool:
        try:
            return Version(version) in SpecifierSet(self.versions, prereleases=True)
        except InvalidVersion:  # a git ref, "local": no range holds it
            return False


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    distribution: str
    #: What a run tests by default: "latest" (the newest release on the index),
    #: a pin ("==5.2.1"), a line ("5.*") or a specifier; "local" for a path.
    version: str
    description: str = ""
    #: The releases this manifest is known to work for (a specifier), or None.
    versions: str | None = None
    #: The release lines of the CI matrix ("latest", "5.*"), newest first.
    matrix: tuple[str, ...] = ("latest",)
    when: tuple[When, ...] = ()
    #: The notes of the ``[[when]]`` blocks applied by ``for_version``.
    applied: tuple[str, ...] = ()
    source_kind: str = "sdist"
    #: For "path": a directory (relative paths are relative to the manifest).
    source_path: Path | None = None
    #: For "vcs": a pip-style URL, e.g. "git+https://github.com/psf/requests@v2.32.3".
    source_url: str | None = None
    #: Test paths, relative to the source root, given to pytest.
    tests: tuple[str, ...] = ("tests",)
    environment: str = "venv"
    requirements: tuple[str, ...] = ()
    #: Installed with --no-deps after the rest: for packages whose own pins
    #: conflict with greenpatch's (httpbin pins greenlet<3 for a server we do not use).
    requirements_no_deps: tuple[str, ...] = ()
    install_library: bool = True
    pytest_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    per_test_timeout: float = 60.0
    run_timeout: float = 1800.0
    services: tuple[ServiceSpec, ...] = ()
    deselect: tuple[Deselect, ...] = ()
    expected: tuple[Expected, ...] = ()
    probe: ProbeSpec | None = None

    @property
    def pinned_version(self) -> str | None:
        """The exact version when ``version`` is "==X" (or a bare "X"), else None."""
        spec = self.version.strip()
        if spec.startswith("=="):
            return spec[2:].strip()
        if spec and spec[0].isdigit():
            return spec
        return None

    def for_version(self, version: str) -> Manifest:
        """This manifest as it reads for ``version``: every ``[[when]]`` block
        whose range holds it added in order (a service named again replaces
        the manifest's own)."""
        blocks = [block for block in self.when if block.applies_to(version)]
        if not blocks:
            return self
        services = {spec.name: spec for spec in self.services}
        env = dict(self.env)
        for block in blocks:
            services.update((spec.name, spec) for spec in block.services)
            env.update(block.env)

        def joined(name: str) -> Any:
            own = getattr(self, name)
            return own + tuple(item for block in blocks for item in getattr(block, name))

        return replace(
            self,
            requirements=joined("requirements"),
            requirements_no_deps=joined("requirements_no_deps"),
            pytest_args=joined("pytest_args"),
            deselect=joined("deselect"),
            expected=joined("expected"),
            env=env,
            services=tuple(services.values()),
            applied=tuple(f"{block.versions}: {block.note}" for block in blocks),
        )

    def expected_reason(self, nodeid: str) -> str | None:
        for entry in self.expected:
            if nodeid == entry.id or nodeid.startswith(entry.id + "::"):
                return entry.reason
        return None


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate the manifest at ``path``."""
    path = Path(path).resolve()
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ManifestError(path, "", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(path, "", f"not UTF-8 text (byte {exc.start})") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(path, "", f"not valid TOML: {exc}") from exc
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ManifestError(path, "", "not valid TOML: nested too deeply") from None
    top = Table(path, raw, "")
    top.check_known(
        (
            "suite",
            "source",
            "environment",
            "pytest",
            "services",
            "deselect",
            "expected",
            "probe",
            "when",
        )
    )
    suite = top.table("suite")
    suite.check_known(("name", "distribution", "version", "versions", "matrix", "description"))
    source = top.table("source")
    source.check_known(("kind", "path", "url", "tests"))
    environment = top.table("environment")
    environment.check_known(
        ("kind", "requirements", "requirements_no_deps", "install_library", "env")
    )
    pytest_table = top.table("pytest")
    pytest_table.check_known(("args", "per_test_timeout", "run_timeout"))

    distribution = suite.string("distribution", required=True) or ""
    # A manifest written for one's own library says `path = ...` and often not
    # `kind = "path"`: the kind follows from the key given (an sdist has neither).
    implied = "path" if "path" in source.data else "vcs" if "url" in source.data else "sdist"
    source_kind = source.choice("kind", SOURCE_KINDS, implied)
    for key, wanted in (("path", "path"), ("url", "vcs")):
        if key in source.data and source_kind != wanted:
            raise source.error(
                key, f"only used with kind = {wanted!r}, and kind is {source_kind!r}"
            )
    source_path = None
    if source_kind == "path":
        text_path = source.string("path", required=True) or ""
        if "\x00" in text_path:
            raise source.error("path", "a path cannot hold a NUL character")
        raw_path = Path(text_path).expanduser()
        source_path = raw_path if raw_path.is_absolute() else (path.parent / raw_path).resolve()
        # Found here, before any work: a missing tree is a usage error (exit 2),
        # not a "not run" result after the environment was built.
        if not source_path.is_dir():
            what = "does not exist" if not source_path.exists() else "is not a directory"
            where = f"relative paths are to {path.parent}"
            raise source.error("path", f"{source_path} {what} ({where})")
    source_url = source.string("url", required=source_kind == "vcs")
    # A local tree's version label is its installed metadata (harness.py); "local"
    # stands in when the library is not installed.  An sdist without a pin tests
    # the newest release (versions.py).
    version = suite.string("version") or ("latest" if source_kind == "sdist" else "local")
    if source_kind == "sdist":
        _check_version_item(suite, "version", version)
    known = suite.string("versions")
    if known is not None:
        _check_specifier(suite, "versions", known)
    matrix = suite.strings("matrix", ("latest",))
    if not matrix:
        raise suite.error("matrix", "expected at least one release line, e.g. ['latest', '5.*']")
    for line in matrix:
        _check_version_item(suite, "matrix", line)

    env_vars = _string_table(environment, "env")

    return Manifest(
        path=path,
        name=suite.string("name", distribution) or distribution,
        distribution=distribution,
        version=version,
        description=suite.string("description", "") or "",
        versions=known,
        matrix=matrix,
        when=tuple(_when(table) for table in top.tables("when")),
        source_kind=source_kind,
        source_path=source_path,
        source_url=source_url,
        tests=source.strings("tests", ("tests",)),
        environment=environment.choice("kind", ENVIRONMENT_KINDS, "venv"),
        requirements=environment.strings("requirements"),
        requirements_no_deps=environment.strings("requirements_no_deps"),
        install_library=environment.boolean("install_library", True),
        env=env_vars,
        pytest_args=pytest_table.strings("args"),
        per_test_timeout=pytest_table.number("per_test_timeout", 60.0),
        run_timeout=pytest_table.number("run_timeout", 1800.0),
        services=_services(top.table("services")),
        deselect=tuple(_deselect(table) for table in top.tables("deselect")),
        expected=tuple(_expected(table) for table in top.tables("expected")),
        probe=_probe(top.table("probe"), _own_servers(top)) if "probe" in top.data else None,
    )


def _services(table: Table) -> tuple[ServiceSpec, ...]:
    specs = []
    for name in table.data:
        service = table.table(name)
        command = service.strings("command")
        if name not in KNOWN_SERVICES and not command:
            raise table.error(
                name,
                f"unknown service; the harness can start {KNOWN_SERVICES}, "
                "or a server of the suite's own given by command = [...]",
            )
        if name in KNOWN_SERVICES and command:
            raise service.error("command", f"{name} is started by the harness: no command")
        service.check_known(("option", "env", "variables", "setup", "command", "command_env"))
        command_env = _string_table(service, "command_env", templates=True)
        for index, part in enumerate(command):
            _check_template(service, f"command[{index}]", part, ("python", "port"))
        for key, template in command_env.items():
            _check_template(service, f"command_env.{key}", template, ("port",))
        if command and service.strings("setup"):
            raise service.error("setup", "a command service takes no setup statements")
        option, env = service.string("option"), service.string("env")
        variables = _string_table(service, "variables", templates=True)
        for key, template in variables.items():
            _check_template(service, f"variables.{key}", template)
        if option is None and env is None and not variables:
            raise service.error(
                "option",
                "say how the server reaches the tests: option = '--x', env = 'X' "
                "or variables = {X = '{host}'}",
            )
        specs.append(
            ServiceSpec(
                name=name,
                option=option,
                env=env,
                variables=dict(variables),
                setup=service.strings("setup"),
                command=command,
                command_env=command_env,
            )
        )
    return tuple(specs)


def _string_table(table: Table, name: str, templates: bool = False) -> dict[str, str]:
    """A table of strings; ``templates``: each must say something (an empty
    template passes nothing of the service)."""
    value = table.data.get(name, {})
    if not isinstance(value, dict):
        raise table.error(name, f"expected a table of strings, got {kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str) or (templates and not item.strip()):
            # The exact key: one wrong value in a table of ten is found at once.
            wanted = "a non-empty string" if templates else "a string"
            raise table.error(f"{name}.{key}", f"expected {wanted}, got {kind(item)}")
    return dict(value)


def _check_specifier(table: Table, name: str, text: str) -> None:
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        raise table.error(
            name, f"expected a version specifier such as '>=5,<9', got {text!r}"
        ) from None


def _check_version_item(table: Table, name: str, text: str) -> None:
    try:
        specifier_for(text)
    except VersionError as exc:
        raise table.error(name, str(exc)) from None


def _when(table: Table) -> When:
    table.check_known(
        (
            "versions",
            "note",
            "requirements",
            "requirements_no_deps",
            "pytest_args",
            "env",
            "deselect",
            "expected",
            "services",
        )
    )
    versions = table.string("versions", required=True) or ""
    _check_specifier(table, "versions", versions)
    return When(
        versions=versions,
        note=table.string("note", required=True) or "",
        requirements=table.strings("requirements"),
        requirements_no_deps=table.strings("requirements_no_deps"),
        pytest_args=table.strings("pytest_args"),
        env=_string_table(table, "env"),
        deselect=tuple(_deselect(item) for item in table.tables("deselect")),
        expected=tuple(_expected(item) for item in table.tables("expected")),
        services=_services(table.table("services")),
    )


def _check_template(
    table: Table, key: str, template: str, known: tuple[str, ...] = SERVICE_FIELDS
) -> None:
    """A ``{field}`` template must name known fields only (found now, not as a
    KeyError when the service has started)."""
    import string

    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise table.error(key, f"bad template {template!r}: {exc}") from None
    for name in fields:
        if name not in known:
            raise table.error(
                key, f"unknown field {{{name}}} in {template!r}; known: {', '.join(known)}"
            )


def _deselect(table: Table) -> Deselect:
    table.check_known(("id", "marker", "reason"))
    entry = Deselect(
        reason=table.string("reason", required=True) or "",
        id=table.string("id"),
        marker=table.string("marker"),
    )
    if entry.id is None and entry.marker is None:
        raise table.error("id", "a deselect entry needs an id (node-id prefix) or a marker")
    return entry


def _expected(table: Table) -> Expected:
    table.check_known(("id", "reason"))
    return Expected(
        id=table.string("id", required=True) or "",
        reason=table.string("reason", required=True) or "",
    )


def _own_servers(top: Table) -> tuple[str, ...]:
    """The names of the suite's own servers (command services), in any block."""
    tables = [
        top.data.get("services", {}),
        *(w.get("services", {}) for w in top.data.get("when", [])),
    ]
    return tuple(
        name
        for services in tables
        if isinstance(services, dict)
        for name, spec in services.items()
        if isinstance(spec, dict) and spec.get("command")
    )


def _probe(table: Table, own_servers: tuple[str, ...] = ()) -> ProbeSpec:
    table.check_known(("callable", "concurrency", "delay", "services", "args", "kwargs", "blocks"))
    target = table.string("callable", required=True) or ""
    if ":" not in target:
        raise table.error("callable", f"expected 'module:function', got {target!r}")
    module = target.partition(":")[0]
    if module.endswith(".py") or "/" in module:
        # A file named by path, relative to the manifest: it must be there now.
        # (A module *name* is looked up when the probe runs, with the manifest's
        # folder first on its path: it may live in the suite's environment only.)
        here = table.path.parent
        file = Path(module).expanduser()
        file = file if file.is_absolute() else (here / file).resolve()
        if not file.is_file():
            raise table.error("callable", f"{file} does not exist (relative paths are to {here})")
        target = f"{file}:{target.partition(':')[2]}"
    args = table.data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
        raise table.error("args", f"expected a list of strings and numbers, got {kind(args)}")
    kwargs = table.data.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(
        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in kwargs.values()
    ):
        raise table.error("kwargs", f"expected a table of strings and numbers, got {kind(kwargs)}")
    services = table.strings("services")
    for name in services:
        if name not in KNOWN_SERVICES and name not in own_servers:
            known = (*KNOWN_SERVICES, *own_servers)
            raise table.error("services", f"unknown service {name!r}; known: {known}")
    return ProbeSpec(
        callable=target,
        # Each concurrent call is a greenlet and a connection: a typo such as
        # 20000000 is refused here, not found as a hang in the probe.
        concurrency=table.integer("concurrency", 20, minimum=1, maximum=10_000),
        delay=table.number("delay", 0.3),
        services=services,
        args=tuple(args) if "args" in table.data or "kwargs" in table.data else None,
        kwargs=dict(kwargs),
        blocks=table.string("blocks"),
    )


def builtin_suites() -> dict[str, Path]:
    """Built-in suite name -> manifest path."""
    return {path.stem: path for path in sorted(SUITES_DIR.glob("*.toml"))}


def resolve_suite(name_or_path: str) -> Manifest:
    """A built-in suite by name, or a manifest file by path."""
    builtins = builtin_suites()
    if name_or_path in builtins:
        return load_manifest(builtins[name_or_path])
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_manifest(candidate)
    raise ManifestError(
        name_or_path,
        "",
        f"no built-in suite of that name (built-in: {', '.join(builtins) or 'none'}) "
        "and no manifest file at that path",
    )

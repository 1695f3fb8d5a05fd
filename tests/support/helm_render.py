"""Helm v4, as a library, for tests/helm.rs: lint or render a chart offline and print JSON.

    helm_render.py lint CHART KUBE_VERSION [VALUES_FILE]
        prints helm_python.lint's report: {"messages": [{"severity", "path", "error"}], "errors": [...]}
    helm_render.py render CHART RELEASE NAMESPACE [VALUES_FILE]
        prints {"manifests": {template path: text}} (like `helm template`), or, when Helm refuses
        the values or a template fails, {"error": {"kind": exception class, "message": text}}

VALUES_FILE is YAML, read by Helm's own parser (the `-f` of the helm CLI). Exits 3, saying how
to install it, when helm-python-sdk (the PyPI package bundling Helm's Go code) is missing.
"""

import json
import sys

try:
    import helm_python
except ImportError as error:
    sys.stderr.write(
        f"helm-python-sdk is not installed ({error}): "
        "python3 -m pip install 'helm-python-sdk==0.2.2' (scripts/test.sh installs it)\n"
    )
    sys.exit(3)


def values(args):
    """The values of the optional VALUES_FILE argument, parsed by Helm."""
    if not args:
        return None
    with open(args[0], encoding="utf-8") as file:
        return helm_python.values_from_yaml(file.read())


def lint(chart, kube_version, *rest):
    return helm_python.lint(chart, values(rest), strict=True, kube_version=kube_version)


def render(chart, release, namespace, *rest):
    try:
        with helm_python.Chart.load(chart) as loaded:
            return {"manifests": loaded.render(values(rest), name=release, namespace=namespace)}
    except (helm_python.HelmValuesError, helm_python.HelmRenderError) as error:
        return {"error": {"kind": type(error).__name__, "message": str(error)}}


def main(argv):
    commands = {"lint": lint, "render": render}
    if len(argv) < 2 or argv[1] not in commands:
        sys.stderr.write(__doc__)
        return 2
    json.dump(commands[argv[1]](*argv[2:]), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

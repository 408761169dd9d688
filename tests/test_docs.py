"""The documentation: its links resolve, the programs it names exist, the README stays a front page.

Pure Python (no Keras tensor): runs once, under the tensorflow backend (the others list it as
skipped, with this reason).
"""

import os
import re
import shlex

import keras
import pytest
from helpers.paths import REPO

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="pure Python (no Keras tensor): runs once, under tensorflow")

README = os.path.join(REPO, "README.md")
DOCS = os.path.join(REPO, "docs")
PAGES = [README, os.path.join(REPO, "benchmarks", "results", "README.md")] + sorted(
    os.path.join(DOCS, name) for name in os.listdir(DOCS) if name.endswith(".md"))
CITED_SECTIONS = ("## 1. ", "### 1b. ", "### 1c. ", "## 2. ", "## 4. ", "## 6. ")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"\b(python3?|bash)\s+((?:[\w.-]+/)*[\w.-]+\.(?:py|sh))\b")


def strip_code_spans(text):
    """Fenced blocks and inline code hold no links (but may hold commands)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


def broken_links(page):
    with open(page, encoding="utf-8") as f:
        text = strip_code_spans(f.read())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(resolved):
            broken.append(f"{target} (no file {os.path.relpath(resolved, REPO)})")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor})")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_program_named_exists(page):
    with open(page, encoding="utf-8") as f:
        text = f.read()
    named = {m.group(2) for m in COMMAND.finditer(text)}
    # ../shared/... lies beside the checkout, not in it: only the repository's own are checked.
    missing = [p for p in named if not p.startswith("..")
               and not os.path.exists(os.path.join(REPO, p))]
    assert missing == []


def test_the_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading\n")
    page.write_text("[ok](there.md#a-heading) [gone](missing.md) [bad](there.md#nowhere)\n"
                    "`[in code](ignored.md)`\n")
    assert broken_links(str(page)) == ["missing.md (no file " + os.path.relpath(
        str(tmp_path / "missing.md"), REPO) + ")", "there.md#nowhere (no heading #nowhere)"]


def test_the_readme_is_a_front_page_that_opens_with_the_ci_commands():
    with open(README, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) < 200
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        ci = [line.split("#")[0].strip() for line in f]
    opening = "\n".join(lines[:20])
    block = re.search(r"```bash\n(.*?)```", opening, flags=re.S)
    assert block, "README.md must open (within 20 lines) with a bash block of commands"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    commands = [c for c in commands if c]
    # The test command, exactly as CI runs it.
    tests = [c for c in ci if c.startswith("bash tests/")]
    assert tests == ["bash tests/run_all_backends.sh"]
    assert tests[0] in commands
    # The install, as CI runs it (CI adds --quiet and the module form).
    install = next(c for c in ci if "pip install" in c and "-e" in c)
    assert shlex.split(install)[-2:] == shlex.split(commands[0])[-2:] == ["-e", ".[all]"]
    # The main job: the program and the model CI's short run uses.
    job = next(c for c in commands if c.startswith("python applications/train.py"))
    ci_job = " ".join(ci[ci.index(next(c for c in ci if "applications/train.py" in c)):])
    for flag in ("--model", "--dataset"):
        ours = shlex.split(job)
        assert ours[ours.index(flag) + 1] in ci_job


def test_the_cited_architecture_sections_exist():
    with open(os.path.join(DOCS, "architecture.md"), encoding="utf-8") as f:
        headings = [line for line in f if line.startswith("#")]
    for prefix in CITED_SECTIONS:
        assert any(h.startswith(prefix) for h in headings), prefix


def test_the_speed_table_markers_are_in_the_results_page():
    with open(os.path.join(REPO, "benchmarks", "results", "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert text.index("<!-- speed table -->") < text.index("<!-- end speed table -->")

"""tests/toolchain: the pins in build.py agree with the wrapper modules, and a changed pin or a failed
build never reuses or leaves a cache entry (no Go needed: the failure path is exercised with a
wrapper module Go refuses)."""

import shutil

import pytest

from tests.toolchain import build


@pytest.mark.parametrize("tool", build.TOOLS.values(), ids=list(build.TOOLS))
def test_build_py_and_the_wrapper_module_pin_the_same_version(tool):
    assert build._pinned_version(tool) == tool.version
    assert (tool.module_dir / "go.sum").read_text().count(f"{tool.module} {tool.version} h1:") == 1
    assert build.tool_dir(tool).name.startswith(f"{tool.name}-{tool.version}-")


def _copy_tool(tmp_path, monkeypatch, name="helm"):
    gomod = tmp_path / "gomod"
    shutil.copytree(build.GOMOD_DIR / name, gomod / name)
    monkeypatch.setattr(build, "GOMOD_DIR", gomod)
    monkeypatch.setenv("LOCALKUBE_CACHE", str(tmp_path / "cache"))
    return build.TOOLS[name]


def test_a_changed_pin_changes_the_cache_key_and_a_disagreeing_pin_is_refused(tmp_path, monkeypatch):
    tool = _copy_tool(tmp_path, monkeypatch)
    before = build.tool_dir(tool)
    go_sum = tool.module_dir / "go.sum"
    go_sum.write_text(go_sum.read_text() + "example.invalid/x v1.0.0 h1:AAAA=\n")
    assert build.tool_dir(tool) != before

    go_mod = tool.module_dir / "go.mod"
    go_mod.write_text(go_mod.read_text().replace(f"{tool.module} {tool.version}", f"{tool.module} v4.0.0"))
    with pytest.raises(build.ToolchainError, match=r"go\.mod requires v4\.0\.0"):
        build.build(tool)


def test_a_failed_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    tool = _copy_tool(tmp_path, monkeypatch)
    broken = build.Tool(tool.name, tool.module, tool.version, "toolchain.invalid/helm/no-such-package")
    with pytest.raises(build.ToolchainError, match="building helm failed"):
        build.build(broken)
    assert not build.tool_dir(broken).exists()
    assert [p.name for p in build.tools_root().iterdir()] == ["build.lock"]  # no staging directory left

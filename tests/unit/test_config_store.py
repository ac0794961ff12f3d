"""The request API's config file edits (`conduyt_bridge.app.requests.store`,
`docs/requests.md` §4): one `[[devices]]` entry changed, every other byte kept, the file
replaced atomically with its mode."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import tomlkit
from tomlkit.items import Table

from conduyt_bridge.app.requests import store
from conduyt_bridge.app.requests.store import (
    ConfigFile,
    add_entry,
    edit_entry,
    remove_entry,
)

HEAD = """# conduyt-bridge configuration   (kept as written)
[bridge]
id = "pi4"          # aligned comment
base_topic = 'conduyt'

"""

FIRST = """# the kitchen board
[[devices]]
id = "kitchen"   # its id
port = "sim://kitchen"
[devices.datastreams.temperature]
name = "Kitchen temperature"
"""

SECOND = """# the shed: a thermostat
[[devices]]
id   =   "shed"
port = "sim://thermostat"   # simulated

[[devices.pins]]
pin = 3
mode = "change"
"""

TAIL = """
# HTTP goes last
[http]
listen = "127.0.0.1:8080"
"""

TEXT = HEAD + FIRST + "\n" + SECOND + TAIL


def devices(text: str) -> list[dict[str, object]]:
    return list(tomlkit.parse(text).unwrap()["devices"])


def test_add_appends_after_the_last_entry_and_keeps_every_other_byte() -> None:
    new = add_entry(TEXT, {"id": "lab", "port": "sim://uno", "read_only": True})
    added = '\n[[devices]]\nid = "lab"\nport = "sim://uno"\nread_only = true\n'
    assert new == HEAD + FIRST + "\n" + SECOND + added + TAIL
    # The result is what tomlkit reads back, byte for byte.
    assert tomlkit.parse(new).as_string() == new


def test_add_to_a_file_without_devices_goes_at_the_end() -> None:
    text = HEAD.rstrip("\n")  # no newline at the end of the file either
    new = add_entry(text, {"id": "lab", "port": "sim://uno"})
    assert new == text + '\n\n[[devices]]\nid = "lab"\nport = "sim://uno"\n'


def test_add_nested_options_as_sub_tables() -> None:
    entry = {
        "id": "lab",
        "port": "sim://uno",
        "pins": [{"pin": 13, "mode": "change"}],
        "datastreams": {"setpoint": {"name": "Set point"}},
    }
    new = add_entry(TEXT, entry)
    assert devices(new)[-1] == entry
    assert new.startswith(HEAD + FIRST + "\n" + SECOND)
    assert new.endswith(TAIL)


def test_remove_takes_the_entry_with_its_comment_and_nothing_else() -> None:
    assert remove_entry(TEXT, 0) == HEAD + SECOND + TAIL
    assert remove_entry(TEXT, 1) == HEAD + FIRST + TAIL


def test_edit_changes_only_the_entry() -> None:
    def edit(table: Table) -> None:
        table["id"] = "shed2"
        table["discovery_id"] = "shed"
        table["read_only"] = True

    new = edit_entry(TEXT, 1, edit)
    edited = SECOND.replace('id   =   "shed"', 'id   =   "shed2"').replace(
        '# simulated\n', '# simulated\ndiscovery_id = "shed"\nread_only = true\n'
    )
    assert new == HEAD + FIRST + "\n" + edited + TAIL
    assert devices(new)[1] == {
        "id": "shed2",
        "port": "sim://thermostat",
        "discovery_id": "shed",
        "read_only": True,
        "pins": [{"pin": 3, "mode": "change"}],
    }


def test_edit_of_an_entry_followed_by_a_comment_keeps_the_comment_with_the_next() -> None:
    def edit(table: Table) -> None:
        table["read_only"] = True

    new = edit_entry(TEXT, 0, edit)
    kitchen, rest = new.split("# the shed: a thermostat")
    assert "read_only = true" in kitchen
    assert "# the shed: a thermostat" + rest == SECOND + TAIL
    assert new.startswith(HEAD + "# the kitchen board\n")


def test_edit_removing_a_key() -> None:
    new = edit_entry(TEXT, 1, lambda t: t.pop("pins"))
    assert devices(new)[1] == {"id": "shed", "port": "sim://thermostat"}
    assert new.startswith(HEAD + FIRST)
    assert new.endswith(TAIL)


def test_devices_as_an_inline_array_fall_back_to_a_document_edit() -> None:
    text = 'devices = [{id = "a", port = "sim://uno"}]  # inline\n'
    new = add_entry(text, {"id": "b", "port": "sim://uno"})
    assert devices(new) == [{"id": "a", "port": "sim://uno"}, {"id": "b", "port": "sim://uno"}]
    assert remove_entry(new, 0).count('"a"') == 0


def test_a_header_inside_a_multiline_string_does_not_confuse_the_edit() -> None:
    text = 'note = """\n[[devices]]\n"""\n' + FIRST
    new = remove_entry(text, 0)
    assert tomlkit.parse(new).unwrap() == {"note": "[[devices]]\n", "devices": []}


def test_stage_and_commit_replace_the_file_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TEXT)
    path.chmod(0o640)
    file = ConfigFile(path)
    staged = file.stage("new text\n")
    assert staged.temp.parent == tmp_path
    assert stat.S_IMODE(staged.temp.stat().st_mode) == 0o640
    assert path.read_text() == TEXT  # nothing changes before the commit
    staged.commit()
    assert path.read_text() == "new text\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_symlinked_config_file_is_written_through_its_link(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text(TEXT)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    ConfigFile(link).stage("x = 1\n").commit()
    assert link.is_symlink()
    assert real.read_text() == "x = 1\n"


def test_a_failed_rename_leaves_the_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TEXT)

    def broken(src: Path, dst: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "replace_file", broken)
    staged = ConfigFile(path).stage("new\n")
    with pytest.raises(OSError, match="No space left on device"):
        staged.commit()
    assert path.read_text() == TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_discard_removes_the_staged_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TEXT)
    staged = ConfigFile(path).stage("new\n")
    staged.discard()
    staged.discard()  # twice is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_an_inline_device_is_not_edited() -> None:
    from conduyt_bridge.app.requests.errors import RequestError

    text = 'devices = [{id = "a", port = "sim://uno"}]\n'
    with pytest.raises(RequestError) as caught:
        edit_entry(text, 0, lambda t: t.pop("port"))
    assert str(caught.value) == (
        "the config file lists its devices inline (devices = [...]): write them as "
        "[[devices]] tables to change one here"
    )

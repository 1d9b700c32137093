"""Configurations from files and settings: :func:`read_config_file` reads one from a JSON
file, a model archive or a training run directory; :func:`apply_settings` applies
``SECTION.KEY=VALUE`` settings (``pinn train --config FILE --set ...``)."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from pinn.config import ARCHIVE_FORMAT, Config
from pinn.errors import ConfigError

_ARCHIVE_CONFIG = "config.json"
_MAX_CONFIG_BYTES = 16 << 20
_READABLE = ("a configuration JSON, a model archive's config.json, a model archive (directory "
             "or .zip) or a training run directory")


def read_config_file(path: str | os.PathLike) -> Config:
    """The configuration in ``path``, whichever way a configuration is stored:

    - a configuration JSON (``{"model": {...}, "data": {...}, "training": {...}}``, each
      section optional and partial: missing keys take their defaults);
    - a model archive's ``config.json`` (its ``config`` key is read);
    - a model archive, as a directory or a ``.zip`` (its ``config.json``);
    - a training run directory ``RUN`` of ``pinn train`` (``RUN/model/config.json``).

    Raises:
        ConfigError: the file is missing, not UTF-8 JSON, holds no configuration, or the
            configuration is invalid (the message names ``path``).
    """
    path = Path(path)
    source = path
    if path.is_dir():
        for candidate in (path / _ARCHIVE_CONFIG, path / "model" / _ARCHIVE_CONFIG):
            if candidate.is_file():
                source = candidate
                break
        else:
            raise ConfigError(f"{path} is a directory without a configuration (no "
                              f"{_ARCHIVE_CONFIG}, no model/{_ARCHIVE_CONFIG}); pass "
                              f"{_READABLE}")
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                info = archive.getinfo(_ARCHIVE_CONFIG)
                if info.file_size > _MAX_CONFIG_BYTES:
                    raise ConfigError(f"{source}: {_ARCHIVE_CONFIG} is too large for a "
                                      "configuration")
                data = archive.read(info)
        else:
            data = source.read_bytes()
    except KeyError:
        raise ConfigError(f"{source} is a zip file without {_ARCHIVE_CONFIG}; pass "
                          f"{_READABLE}") from None
    except (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot read the configuration {source}: {reason}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source} is not UTF-8 text ({exc}); pass {_READABLE}") from None
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"{source}: configuration is not valid JSON ({exc})") from None
    if isinstance(raw, dict) and raw.get("format") == ARCHIVE_FORMAT:
        raw = raw.get("config")  # an archive's manifest: the configuration is one key of it
    try:
        return Config.from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def apply_settings(config: Config, settings: list[str]) -> Config:
    """``config`` with ``SECTION.KEY=VALUE`` settings applied in order (what ``pinn train
    --set`` takes), e.g. ``training.plateau_patience=6``. VALUE is read as JSON (``6``,
    ``1e-3``, ``true``, ``null``, ``"bf16"``); anything that is not JSON is a string, so
    ``training.precision=bf16`` works unquoted.

    Raises:
        ConfigError: a setting without ``=``, an unknown section or key (with a suggestion), or
            a value the field refuses.
    """
    sections = {f.name: dict(dataclasses.asdict(getattr(config, f.name)))
                for f in dataclasses.fields(config)}
    for setting in settings:
        name, equals, text = setting.partition("=")
        section, dot, key = name.strip().partition(".")
        if not (equals and dot):
            raise ConfigError(f"setting {setting!r} is not SECTION.KEY=VALUE, e.g. "
                              "training.plateau_patience=6")
        if section not in sections:
            raise ConfigError(f"setting {setting!r}: unknown section {section!r}"
                              f"{_suggest(section, sections)}; sections are {sorted(sections)}")
        if key not in sections[section]:
            raise ConfigError(f"setting {setting!r}: {section} has no key {key!r}"
                              f"{_suggest(key, sections[section])}; docs/CONFIG.md lists "
                              "every key")
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            value = text
        sections[section][key] = value
    return Config.from_dict(sections)


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

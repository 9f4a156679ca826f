"""``templates:`` and a stage's ``extends: NAME``: reuse partial stage configs.

A template is a partial stage config; it may itself extend another template.
A stage that extends a template gets the template's fields, deep-merged under
its own: mappings merge key by key, anything else (lists included) is replaced
by what the stage says. Merged values keep the locations where they were
written, so a bad value from a template is reported in the template's file.
"""

from __future__ import annotations

import re
from compressflow.errors import Problem, did_you_mean
from compressflow.dsl.located import LocatedDict, ValueBudget, copy_located
from compressflow.dsl.problems import Problems
from compressflow.dsl.schema import NAME_PATTERN, NAME_RULE

_NAME = re.compile(NAME_PATTERN)


def apply_templates(document: LocatedDict, problems: Problems) -> None:
    """Resolve every stage's ``extends`` in place and drop ``templates`` from ``document``."""
    templates = _templates(document, problems)
    stages = document.get("stages")
    if not isinstance(stages, LocatedDict):
        return
    resolver = _Resolver(templates, problems, ValueBudget(document))
    for name, config in stages.items():
        if not isinstance(config, LocatedDict) or "extends" not in config:
            continue
        base = resolver.base_of(config, ("stages", name))
        location = config.value_location("extends")
        config.drop("extends")
        if base is None:
            problems.mark_invalid(("stages", name))  # without its template the stage cannot be judged
            continue
        resolver.budget.add(base, location, ("stages", name, "extends"), "templates")
        stages.put(name, deep_merge(base, config), stages.key_location(name), stages.value_location(name))


def _templates(document: LocatedDict, problems: Problems) -> LocatedDict:
    templates = document.get("templates")
    if "templates" in document:
        document.drop("templates")
    if templates is None:
        return LocatedDict(document.location)
    if not isinstance(templates, LocatedDict):
        problems.append(Problem("'templates' is a mapping of template names to partial stage configs",
                                document.location, ("templates",)))
        return LocatedDict(document.location)
    for name in list(templates):
        if not _NAME.match(name):
            problems.append(Problem(f"invalid template name '{name}': {NAME_RULE}", templates.key_location(name),
                                    ("templates", name)))
        if not isinstance(templates[name], LocatedDict):
            problems.append(Problem(f"template '{name}' must be a mapping of stage fields",
                                    templates.value_location(name), ("templates", name)))
            templates.drop(name)
    return templates


class _Resolver:
    """Templates with their own ``extends`` resolved, each once."""

    def __init__(self, templates: LocatedDict, problems: Problems, budget: ValueBudget):
        self.templates = templates
        self.problems = problems
        self.budget = budget
        self.resolved: dict[str, LocatedDict | None] = {}

    def base_of(self, config: LocatedDict, path: tuple, chain: tuple[str, ...] = ()) -> LocatedDict | None:
        """The resolved template ``config`` extends, or None after reporting why there is none."""
        name, location = config["extends"], config.value_location("extends")
        if not isinstance(name, str):
            self.problems.append(Problem("'extends' names a template", location, path + ("extends",)))
            return None
        if name not in self.templates:
            known = list(self.templates)
            hint = did_you_mean(name, known) or (f"known templates: {', '.join(known)}" if known
                                                 else "define it under 'templates:'")
            self.problems.append(Problem(f"unknown template '{name}'", location, path + ("extends",), hint))
            return None
        if name in chain:
            cycle = " -> ".join(chain[chain.index(name):] + (name,))
            self.problems.append(Problem(f"templates extend each other in a cycle: {cycle}", location,
                                         path + ("extends",)))
            return None
        return self._resolve(name, chain + (name,))

    def _resolve(self, name: str, chain: tuple[str, ...]) -> LocatedDict | None:
        if name in self.resolved:
            return self.resolved[name]
        template = self.templates[name]
        result: LocatedDict | None = template
        if "extends" in template:
            own = copy_located(template)
            own.drop("extends")
            base = self.base_of(template, ("templates", name), chain)
            if base is not None:
                self.budget.add(base, template.value_location("extends"), ("templates", name, "extends"),
                                "templates")
            result = deep_merge(base, own) if base is not None else None
        self.resolved[name] = result
        return result


def deep_merge(base: LocatedDict, override: LocatedDict) -> LocatedDict:
    """``base`` with ``override`` on top: mappings merge, other values are replaced.

    Neither input is changed; every value keeps the location it was written at.
    """
    merged = LocatedDict(override.location)
    for key, below in base.items():
        if key not in override:
            merged.put_like(key, copy_located(below), base, key)
        elif isinstance(below, LocatedDict) and isinstance(override[key], LocatedDict):
            merged.put_like(key, deep_merge(below, override[key]), override, key)
        else:
            merged.put_like(key, override[key], override, key)
    for key in override:
        if key not in base:
            merged.put_like(key, override[key], override, key)
    return merged


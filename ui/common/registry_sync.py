"""Pickers that follow the registry: one mechanism for every tab, so a model registered while the app runs (a
run of the Train tab, `app.py train --register`, an overlay entry) appears in every picker without a restart or
a page reload, and a removed one leaves them.

How: `build_app` builds the tabs inside `follow_registry(registry)`. Every picker made by `model_picker`, and
every other component a tab hands to `live_choices` / `live_value`, is collected; at the end one `gr.Timer` per
page asks, every FOLLOW_EVERY_S seconds, whether the registry's `version` differs from the one the page last saw
(a number in a `gr.State`, with the pickers' values: a small request, answered without queueing). Only when it
does, the tick returns new choices for each collected component. A picker keeps its value while the
value is still a choice; the value is sent only when it has to change (its model was removed), so an update never
overwrites a pick the user made while it was on its way.

A tab built outside `follow_registry` (a test that builds one tab) gets static pickers: nothing is collected.

With logins on, a fine-tuned model may be its owner's alone (backend/core/registry.py `visible`): the page is built with
the models everyone may use, the registry reads the logged-in user of the request being served (`request_user`),
and every page's first tick brings in that user's own models.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

import gradio as gr
from gradio.context import LocalContext

from backend.core.registry import PUBLIC, Registry
from backend.core.types import Task

FOLLOW_EVERY_S = 2.0

Choices = Sequence[Any]  # what gr.Dropdown takes: values, or (label, value) pairs
Component = gr.components.Component
C = TypeVar("C", bound=Component)


def choice_values(choices: Choices) -> list[Any]:
    return [choice[1] if isinstance(choice, (tuple, list)) else choice for choice in choices]


def kept_value(current: Any, choices: Choices, index: int = 0, multiselect: bool = False) -> Any:
    """The picker's value after its choices changed: the current one while still a choice, else the choice at
    `index` (the last when there are fewer), else None; for a multiselect the current values still there."""
    values = choice_values(choices)
    if multiselect:
        return [value for value in current or [] if value in values]
    if current in values:
        return current
    return values[min(index, len(values) - 1)] if values else None


@dataclass(frozen=True)
class _Picker:
    component: Component
    choices: Callable[..., Choices]  # called with the values of `inputs`, in order
    inputs: tuple[Component, ...]
    index: int
    multiselect: bool
    empty_info: Any  # the info line shown while there is no choice (None: the info is never changed)

    def update(self, values: dict[Component, Any]) -> Any:
        choices = list(self.choices(*(values[component] for component in self.inputs)))
        current = values[self.component]
        value = kept_value(current, choices, self.index, self.multiselect)
        changes: dict[str, Any] = {"choices": choices}
        if value != current:
            changes["value"] = value
        if self.empty_info is not None:
            changes["info"] = None if choices else self.empty_info
        return gr.update(**changes)


@dataclass(frozen=True)
class _Refresh:
    component: Component
    value: Callable[[], Any]  # the component's new value (a table of models ...)


@dataclass
class RegistryFollow:
    """The components of one page that follow `registry`; `attach` wires them to one timer."""

    registry: Registry
    every_s: float = FOLLOW_EVERY_S
    pickers: list[_Picker] = field(default_factory=list)
    refreshes: list[_Refresh] = field(default_factory=list)
    per_user: bool = False  # the page was built with everyone's models only: update it for its user at once
    seen: Optional[gr.State] = None  # the registry version the page last saw (set by `attach`)

    def choices(self, dropdown: Component, choices: Callable[..., Choices], inputs: Sequence[Component] = (),
                index: int = 0, empty_info: Any = None) -> None:
        self.pickers.append(_Picker(dropdown, choices, tuple(inputs), index,
                                    bool(getattr(dropdown, "multiselect", False)), empty_info))

    def refresh(self, component: Component, value: Callable[[], Any]) -> None:
        self.refreshes.append(_Refresh(component, value))

    def attach(self) -> Optional[gr.Timer]:
        """Renders the page's timer and version State and wires them (call inside the page's gr.Blocks)."""
        if not self.pickers and not self.refreshes:
            return None
        # The version the page was built with: a page opened later, after a change, still holds the build's
        # choices and this number, so its first tick brings it up to date.
        seen = self.seen = gr.State(None if self.per_user else self.registry.version)
        timer = gr.Timer(self.every_s)
        inputs: set[gr.blocks.Block] = {seen} | {picker.component for picker in self.pickers}
        inputs |= {component for picker in self.pickers for component in picker.inputs}
        outputs = [seen] + [picker.component for picker in self.pickers] + [item.component for item in self.refreshes]
        # Not queued: a tick is a dictionary lookup, answered at once without a place in the queue. (A second,
        # chained event on the State's change would send fewer values, but Gradio's client dispatches State
        # changes only for queued events.)
        timer.tick(self.tick, inputs=inputs, outputs=outputs, api_visibility="private", show_progress="hidden",
                   queue=False)
        return timer

    def tick(self, values: dict[Component, Any]) -> dict[Component, Any]:
        """Nothing while the page has seen the registry's version; else every follower's update."""
        version = self.registry.version
        seen = self.seen
        assert seen is not None  # set by `attach`, which wires this tick
        if values[seen] == version:
            return {seen: gr.skip()}
        result: dict[Component, Any] = {seen: version}
        result.update({picker.component: picker.update(values) for picker in self.pickers})
        result.update({item.component: item.value() for item in self.refreshes})
        return result


_ACTIVE: ContextVar[Optional[RegistryFollow]] = ContextVar("workbench_registry_follow", default=None)


def request_user() -> Optional[str]:
    """The logged-in user of the event Gradio is serving in this context; None without a login or a request."""
    request = LocalContext.request.get(None)
    return getattr(request, "username", None) if request is not None else None


@contextmanager
def follow_registry(registry: Registry, every_s: float = FOLLOW_EVERY_S,
                    per_user: bool = False) -> Iterator[RegistryFollow]:
    """Collects the pickers of the tabs built inside; attaches their timer on leaving (inside gr.Blocks).

    `per_user` (logins on): the tabs are built with the models everyone may use (PUBLIC), and each page gets its
    user's list on its first tick; the registry's lookups in events are for the request's user."""
    follow = RegistryFollow(registry, every_s, per_user=per_user)
    registry.viewer = request_user
    token = _ACTIVE.set(follow)
    try:
        with registry.viewing_as(PUBLIC if per_user else None):
            yield follow
    finally:
        _ACTIVE.reset(token)
    follow.attach()


def live_choices(dropdown: C, choices: Callable[..., Choices], inputs: Sequence[Component] = (),
                 index: int = 0, empty_info: Any = None) -> C:
    """Makes `dropdown` follow the registry: `choices(*values of inputs)` gives its choices after a change
    (`inputs`: the components the list depends on, e.g. a task radio). Returns the dropdown."""
    follow = _ACTIVE.get()
    if follow is not None:
        follow.choices(dropdown, choices, inputs, index, empty_info)
    return dropdown


def live_value(component: Component, value: Callable[[], Any]) -> Component:
    """Makes `component` re-read its value (`value()`) whenever the registry changes. Returns the component."""
    follow = _ACTIVE.get()
    if follow is not None:
        follow.refresh(component, value)
    return component


def task_choices(registry: Registry, task: Optional[Task] = None) -> list[tuple[str, str]]:
    """(name, id) of the registry's models for `task` (every model when None): what a model picker offers."""
    return [(spec.display_name, spec.id) for spec in registry.specs(task)]


@dataclass(frozen=True)
class LiveIds:
    """The ids of the registry's models for a task as they are when asked (a Container, e.g. for `in`)."""

    registry: Registry
    task: Optional[Task] = None

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and model_id in self.registry.ids(self.task)

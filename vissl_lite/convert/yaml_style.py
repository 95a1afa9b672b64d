"""How the converter writes YAML: block mappings at the top, flow style for short leaves
(`[0.1, 2.0]`, `{name: linear, start_value: 0.6}`, `[mlp, {dims: [2048, 128]}]`), no anchors."""

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # a value written twice is written twice, not as *id001
        return True


class _Flow(list):
    pass


class _FlowMap(dict):
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))

SHORT = 100  # characters: a mapping inside a list that fits stays on one line


def _styled(value, in_list: bool = False):
    if isinstance(value, dict):
        styled = {k: _styled(v) for k, v in value.items()}
        flat = in_list and len(yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=10**6)) <= SHORT
        return _FlowMap(styled) if flat else styled
    if isinstance(value, (list, tuple)):
        items = [_styled(v, in_list=True) for v in value]
        simple = all(not isinstance(v, dict) or isinstance(v, _FlowMap) for v in items)
        return _Flow(items) if simple else items
    return value


def dump(value) -> str:
    return yaml.dump(_styled(value), Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)


def flow(value) -> str:
    """One line of flow YAML, e.g. `[0.1, 2.0]`, `true`, `null`."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=10**6).strip()
    return text[:-len("...")].strip() if text.endswith("...") else text

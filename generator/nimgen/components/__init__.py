"""Platform components: the model workload, node pools, device plugin, storage, secrets, monitoring, add-ons.

Each component lives in one module (monitoring's five share one) and declares, in one class:

- whether an environment uses it (`enabled`);
- its Applications (`applications`: name, chart, values, namespace, wave, sync options, ignoreDifferences),
  each with its chart: one nimgen ships (`Chart("name")`, under `charts/`) or a pinned upstream one
  (`Chart("name", repo=..., version=...)`);
- the kinds and extra namespaces its charts create (`grants`), from which the AppProjects are derived;
- its environment checks (`check`), and its notes in the environment README (`readme`, `sync_label`);
- files it generates beyond its charts (`files`).

`nimgen.gitops.applications` builds Argo CD objects from these declarations and `nimgen.gitops.tree`
the files; neither names a component. `plan` and `diff` need nothing from a component: they read the
capacity of the models and compare every object the tree applies.

Adding a component:

1. Add its settings to `schemas/environment.schema.json`, to the `Environment` in
   `model.py` and to `environment/load.py` (typed settings, as for `open_webui`).
2. Write `components/<name>.py`: a `Component` subclass, its values, kinds and constants; a chart it
   ships goes under `charts/<name>/` with `values.schema.json` (render checks values against it).
3. Register an instance in `components/registry.py` (its place sets the order of its kinds in the
   platform AppProject and of its README notes).
4. Test it: its Application and values, the AppProject rights it adds, its checks.
   `tests/test_components.py` checks every registered component against these rules.
"""

"""The environment file: parsed (`load`), layered (`layering`), schema-checked (`schema`) and cross-checked
(`checks`, `poolchecks`, `capacity`) into the typed `model` that rendering consumes."""

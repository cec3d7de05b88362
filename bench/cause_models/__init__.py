"""Model code of three families for the cause-naming benchmark (`bench.cause_naming`).

Each module is one project's model file: the LightningModule and its data module, written the
way real projects write them, small enough to train on a CPU in seconds. The benchmark copies a
module into a temporary project as `model.py` and applies a bug variant's source edits to it
(`bench.cause_models.variants`), so keep each edit's target text unique in its module.
"""

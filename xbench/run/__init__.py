"""One benchmark cell: plan, model, Lightning module, callbacks, heatmaps, resume."""

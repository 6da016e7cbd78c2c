"""Sources, column kinds, tables, splits, images and the preprocessing fit on train."""

-- Each customer may lay out its archive differently; NULL keeps the default layout.
ALTER TABLE customers ADD COLUMN path_template text;

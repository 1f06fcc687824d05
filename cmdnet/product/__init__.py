"""The clinical product: the model bundle of one MVI method, `cmdnet predict`, saliency maps and export."""

"""Label review: find the annotations that are probably wrong, with out-of-sample models and cleanlab.

``folds`` trains k models so no image is judged by a model that saw it, ``flags`` turns
cleanlab's ObjectLab scores into flags by kind, ``project`` reads a Label Studio project
and writes the flags back as predictions of their own model version (docs/review.md).
"""

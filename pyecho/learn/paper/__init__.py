"""The reproduction of Rao et al., PRR 5, 043098 (2023), leak-free: the |M| features, PCA and
k-means, beta-VAEs, SMOTE + random forests, the Table I zoo, W screening, regressions, the
paper's leak reproduced, the seed study, the saved models, and the paper's numbers
(:mod:`~pyecho.learn.paper.table`)."""

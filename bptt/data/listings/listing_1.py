def clip_gradients(gradients, max_norm):
    total_norm = np.sqrt(sum([np.sum(grad ** 2) for grad in gradients]))
    clip_coef = max_norm / (total_norm + 1e-6)
    if clip_coef < 1:
        for grad in gradients:
            grad *= clip_coef
    return gradients

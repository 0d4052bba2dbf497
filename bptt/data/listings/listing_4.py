def bptt_manual(xs, hs, ys, targets, W_xh, W_hh, W_hy):
    """
    Manual BPTT computation.
    
    Args:
        xs: List of inputs [x_1, ..., x_T]
        hs: List of hidden states [h_0, h_1, ..., h_T]
        ys: List of outputs [y_1, ..., y_T]
        targets: List of targets
        W_xh, W_hh, W_hy: Weight matrices
    
    Returns:
        Gradients for all parameters
    """
    T = len(xs)
    
    # Initialize gradients
    dW_xh = torch.zeros_like(W_xh)
    dW_hh = torch.zeros_like(W_hh)
    dW_hy = torch.zeros_like(W_hy)
    
    # Backward pass through time
    dh_next = torch.zeros_like(hs[0])
    
    for t in reversed(range(T)):
        # Gradient from output
        dy = ys[t] - targets[t]  # Assuming softmax + cross-entropy
        
        # Gradient for output weights
        dW_hy += torch.outer(dy, hs[t+1])
        
        # Gradient flowing to hidden state
        dh = W_hy.T @ dy + dh_next
        
        # Gradient through tanh
        dh_raw = dh * (1 - hs[t+1] ** 2)
        
        # Gradient for input weights
        dW_xh += torch.outer(dh_raw, xs[t])
        
        # Gradient for recurrent weights
        dW_hh += torch.outer(dh_raw, hs[t])
        
        # Propagate gradient to previous timestep
        dh_next = W_hh.T @ dh_raw
    
    return dW_xh, dW_hh, dW_hy

def train_rnn(model, sequence, learning_rate):
    # Forward Pass
    hidden = initialize_hidden_state()
    outputs, hidden_states = [], []
    
    for timestep in sequence:
        hidden = compute_hidden_state(timestep, hidden)
        output = compute_output(hidden)
        
        outputs.append(output)
        hidden_states.append(hidden)
    
    # Compute Loss
    loss = compute_loss(outputs, target_sequence)
    
    # Backward Pass (Gradient Computation)
    gradients = compute_gradients(loss, hidden_states)
    
    # Gradient Clipping
    clipped_gradients = clip_gradients(gradients)
    
    # Weight Update
    update_weights(model, clipped_gradients, learning_rate)

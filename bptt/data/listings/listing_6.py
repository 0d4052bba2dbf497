import matplotlib.pyplot as plt

def visualize_gradient_flow(model, sequence):
    """Visualize gradient magnitudes through time."""
    gradients = []
    
    # Register hooks to capture gradients
    def hook(module, grad_input, grad_output):
        gradients.append(grad_output[0].norm().item())
    
    handle = model.rnn.register_backward_hook(hook)
    
    # Forward and backward
    outputs, _ = model(sequence)
    loss = outputs.sum()
    loss.backward()
    
    handle.remove()
    
    # Plot
    plt.figure(figsize=(10, 4))
    plt.plot(gradients[::-1])  # Reverse for chronological order
    plt.xlabel('Timestep')
    plt.ylabel('Gradient Magnitude')
    plt.title('Gradient Flow Through Time')
    plt.show()

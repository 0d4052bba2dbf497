def truncated_bptt(model, sequence, chunk_size, optimizer):
    """
    Truncated BPTT: backpropagate through chunks.
    """
    hidden = None
    total_loss = 0
    
    for i in range(0, len(sequence) - 1, chunk_size):
        # Get chunk
        inputs = sequence[i:i + chunk_size]
        targets = sequence[i + 1:i + chunk_size + 1]
        
        # Detach hidden state to truncate gradient flow
        if hidden is not None:
            hidden = hidden.detach()
        
        # Forward pass
        outputs, hidden = model(inputs.unsqueeze(0), hidden)
        loss = criterion(outputs.squeeze(0), targets)
        
        # Backward pass (only through this chunk)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        
        total_loss += loss.item()
    
    return total_loss

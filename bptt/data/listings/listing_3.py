import torch
import torch.nn as nn

# Model
rnn = nn.RNN(input_size=10, hidden_size=20, batch_first=True)
fc = nn.Linear(20, 5)

# Data
x = torch.randn(32, 15, 10, requires_grad=True)
targets = torch.randint(0, 5, (32,))

# Forward pass (builds computational graph)
outputs, h_n = rnn(x)
logits = fc(h_n.squeeze(0))

# Loss
criterion = nn.CrossEntropyLoss()
loss = criterion(logits, targets)

# Backward pass (BPTT happens automatically)
loss.backward()

# Gradients are now available
print(f"Input grad shape: {x.grad.shape}")
print(f"RNN weight grad: {rnn.weight_ih_l0.grad.shape}")

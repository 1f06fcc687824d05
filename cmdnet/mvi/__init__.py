"""The CMD-Net paper (3-class microvascular invasion): the method registry (`methods`), the networks
(`models`), the loss terms (`losses`) and the weighted objective they form (`objective`), and one fold's
training and prediction (`training`)."""

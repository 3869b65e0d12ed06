print("peft-plan")
